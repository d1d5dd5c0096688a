"""The OMS side: put messages on its queues as the OMS would, read what Wheel put there, and the
inbox of stored OMS messages (show one, replay one)."""

from __future__ import annotations

import sys
import time
import uuid

import click

from wheel.db.models import InboxMessage
from wheel.oms.orders import validate_document
from wheel.settings import Settings
from workers import bootstrap
from workers.cli.messages import replay_one
from workers.cli.output import fail, sessions_of, settings_of


@click.group()
def oms() -> None:
    """Put messages on the OMS queues, as the OMS would (for tests and demos)."""


def _queue_name(settings: Settings, queue: str) -> str:
    return settings.oms_queues.get(queue, queue)


@oms.command("put")
@click.argument("queue")
@click.argument("file", type=click.File("rb"))
@click.option("--message-id", help="Transport message id (default: a new UUID). Reuse one to test redelivery.")
@click.option("--count", type=click.IntRange(1), default=1, show_default=True, help="Put the file this many times.")
@click.pass_context
def oms_put(ctx: click.Context, queue: str, file, message_id: str | None, count: int) -> None:
    """Put FILE as a message on QUEUE: ranging, deranging, inventory, pricing, or a queue name.

    Use - as FILE to read standard input.
    """

    settings = settings_of(ctx)
    body = file.read()
    name = _queue_name(settings, queue)
    transport = bootstrap.transport(settings)
    try:
        transport.connect()
        for _ in range(count):
            mid = message_id or uuid.uuid4().hex
            transport.put(name, body, message_id=mid)
    except transport.connection_errors as exc:
        fail(f"cannot reach the OMS broker at {transport!r}: {exc}")
    finally:
        transport.close()
    click.echo(f"put {count} message{'s' if count > 1 else ''} ({len(body):,} bytes) on {name}"
               + (f", message id {mid}" if count == 1 else ""))


@oms.command("tail")
@click.argument("queue")
@click.option("--count", type=click.IntRange(1), help="Stop after this many messages (default: run until Ctrl-C).")
@click.option("--wait", type=float, default=None, help="Stop when no message came for this many seconds.")
@click.option("--ids-only", is_flag=True, help="Print only each message's id and kind, one per line.")
@click.pass_context
def oms_tail(ctx: click.Context, queue: str, count: int | None, wait: float | None, ids_only: bool) -> None:
    """Print what Wheel put on an OMS queue: orders, cancellations, or a queue name.

    Takes the messages off the queue (as the OMS would) and prints each with its message id,
    and whether it is valid against Wheel's XSDs. The way to see Wheel's output without an OMS.
    """

    settings = settings_of(ctx)
    name = {"orders": settings.queue_orders, "cancellations": settings.queue_cancellations}.get(queue, queue)
    transport = bootstrap.transport(settings)
    seen = 0

    try:
        transport.connect()
        transport.declare([name])
        if not ids_only:
            click.echo(f"reading {name} (Ctrl-C stops)", err=True)
        last = time.monotonic()
        while count is None or seen < count:
            delivery = transport.get_one(name, wait_s=1.0)
            if delivery is None:
                if wait is not None and time.monotonic() - last >= wait:
                    break
                continue
            last = time.monotonic()
            seen += 1
            try:
                kind = validate_document(delivery.body)
            except ValueError as exc:
                kind = f"INVALID ({exc})"
            if ids_only:
                click.echo(f"{delivery.message_id}\t{kind}")
            else:
                click.secho(f"--- {delivery.message_id}  {kind}  {len(delivery.body)} bytes", fg="cyan")
                click.echo(delivery.body.decode("utf-8", "replace").rstrip())
    except KeyboardInterrupt:
        pass
    except transport.connection_errors as exc:
        fail(f"cannot reach the OMS broker at {transport!r}: {exc}")
    finally:
        transport.close()
    if not ids_only:
        click.echo(f"{seen} message{'s' if seen != 1 else ''} from {name}", err=True)


@click.group()
def inbox() -> None:
    """Read stored OMS messages and replay them after fixing (see also `wheelctl messages`)."""


@inbox.command("show")
@click.argument("inbox_id", type=int)
@click.pass_context
def inbox_show(ctx: click.Context, inbox_id: int) -> None:
    """Write a stored message's raw body to standard output."""

    with sessions_of(ctx)() as session:
        message = session.get(InboxMessage, inbox_id)
    if message is None:
        fail(f"no inbox message {inbox_id}")
    click.echo(f"# inbox {message.id} queue={message.queue} status={message.status} "
               f"bytes={message.size} error={message.last_error or '-'}", err=True)
    sys.stdout.buffer.write(message.body)


@inbox.command("replay")
@click.argument("inbox_id", type=int)
@click.option("--body", "body_file", type=click.File("rb"), help="A corrected body (default: the stored one).")
@click.pass_context
def inbox_replay(ctx: click.Context, inbox_id: int, body_file) -> None:
    """Process a stored message again, as a new message (optionally with a corrected body).

    The same as `wheelctl messages replay ID`."""
    replay_one(ctx, inbox_id, body_file.read() if body_file else None)


COMMANDS = [oms, inbox]
