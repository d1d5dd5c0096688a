"""`wheelctl`: the operator's command line. Every command has --help.

This is the composition root for operator commands: it builds settings from the environment and
wires the core library (`wheel`), the OMS transports and the Celery app together.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import uuid
from pathlib import Path

import click

from bridge.guard import ensure_wheel_is_ours

ensure_wheel_is_ours()

from wheel.settings import Settings  # noqa: E402


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


def _sessions(settings: Settings):
    from wheel.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(settings.database_url, pool_size=2, application_name="wheelctl"))


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")
@click.version_option(package_name="wheel-middleware")
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Wheel: run your marketplace business (Amazon India, Flipkart, Tata CLiQ) from your OMS.

    Settings come from WHEEL_* environment variables (see `wheelctl settings`).
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        ctx.obj = Settings()
    except Exception as exc:  # noqa: BLE001 - pydantic says which variable is wrong
        _fail(f"invalid settings: {exc}")


@main.command()
@click.pass_context
def settings(ctx: click.Context) -> None:
    """Print the settings in force (passwords masked)."""
    for name, value in _settings(ctx).redacted().items():
        click.echo(f"WHEEL_{name.upper()}={value}")


@main.command()
@click.option("--check", is_flag=True, help="Only check that the models and migrations agree.")
@click.pass_context
def migrate(ctx: click.Context, check: bool) -> None:
    """Create the database if it is missing and bring its schema up to date."""
    from wheel.db import migrate as migrations

    url = _settings(ctx).database_url
    if check:
        migrations.check(url)
        click.echo("models and migrations agree")
        return
    if migrations.ensure_database(url):
        click.echo("created the database")
    migrations.upgrade(url)
    click.echo("database schema is up to date")


# -- services -----------------------------------------------------------------------------------


@main.group()
def services() -> None:
    """The local services Wheel needs: Postgres, Redis, RabbitMQ."""


@services.command("check")
@click.pass_context
def services_check(ctx: click.Context) -> None:
    """Check that Postgres, Redis and RabbitMQ answer; say how to start any that does not."""
    from bridge.checks import check_services

    results = check_services(_settings(ctx))
    for result in results:
        click.echo(result.line())
    if not all(r.ok for r in results):
        sys.exit(1)


# -- bridge -------------------------------------------------------------------------------------


@main.command()
@click.option("--batch-size", type=click.IntRange(1, 5000), help="Messages per inbox transaction.")
@click.option("--accept-existing-queues", is_flag=True,
              help="RabbitMQ: consume OMS queues that exist with other arguments than Wheel declares (no single "
                   "active consumer, no dead-letter route), as they are. Safe only while exactly one bridge runs.")
@click.pass_context
def bridge(ctx: click.Context, batch_size: int | None, accept_existing_queues: bool) -> None:
    """Consume the four OMS queues into the inbox and hand each message to the workers.

    One bridge consumes at a time; another started alongside waits as a hot standby and takes
    over when the first goes (RabbitMQ: single active consumer; IBM MQ: exclusive input).
    Stops cleanly on SIGTERM or Ctrl-C, finishing the batch in hand.
    """
    from bridge.main import run_bridge

    settings = _settings(ctx)
    if batch_size:
        settings = settings.model_copy(update={"bridge_batch_size": batch_size})
    run_bridge(settings, accept_existing_queues=accept_existing_queues)


# -- sandbox ------------------------------------------------------------------------------------


@main.command()
@click.option("--host", help="Address to listen on [WHEEL_SANDBOX_HOST].")
@click.option("--port", type=int, help="Port to listen on [WHEEL_SANDBOX_PORT].")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help='JSON: {"channels": {"UA": {"marketplace": "tatacliq", "token": "...", "fail_status": 500}}}')
@click.pass_context
def sandbox(ctx: click.Context, host: str | None, port: int | None, config_path: str | None) -> None:
    """Run the marketplace sandbox: the marketplaces' APIs, emulated, for demos and tests.

    Steer it over HTTP: PUT /_sandbox/channels/<id> (token, fail_status, fail_times, delay_s,
    refuse_token), GET /_sandbox/calls, GET /_sandbox/state/<id>, POST /_sandbox/reset.
    """
    from wheel.sandbox.app import SandboxApp, load_config, serve

    settings = _settings(ctx)
    app = SandboxApp(load_config(config_path) if config_path else {})
    server = serve(app, host or settings.sandbox_host, port if port is not None else settings.sandbox_port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    click.echo(f"sandbox listening on http://{server.host}:{server.server_port} "
               f"({len(app.state.channels)} channels configured)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@main.command()
@click.pass_context
def flower(ctx: click.Context) -> None:
    """Run Flower, Celery's monitor, on WHEEL_FLOWER_ADDRESS:WHEEL_FLOWER_PORT (127.0.0.1:5555).

    It asks for WHEEL_FLOWER_BASIC_AUTH (user:password), or the secret flower-basic-auth; without
    either it listens on a loopback address only. The password is never printed or logged.
    """
    # Imported here, as in the other commands: wheelctl's start-up stays light for every command.
    import os

    from workers.flower import FlowerConfigError, flower_launch

    try:
        launch = flower_launch(_settings(ctx), os.environ)
    except FlowerConfigError as exc:
        _fail(str(exc))
    who = f"basic auth for {', '.join(launch.users)}" if launch.authenticated else "no password (loopback only)"
    click.echo(f"flower on {launch.url()} ({who})")
    sys.stdout.flush()
    os.execve(launch.argv[0], launch.argv, launch.env)


# -- channels -----------------------------------------------------------------------------------


@main.group()
def channels() -> None:
    """List, add, enable and disable channels (seller accounts on marketplaces)."""


@channels.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def channels_list(ctx: click.Context, as_json: bool) -> None:
    """List the channels."""
    from wheel.services.channels import list_channels

    with _sessions(_settings(ctx))() as session:
        rows = list_channels(session)
    if as_json:
        for c in rows:
            click.echo(json.dumps({"id": c.id, "marketplace": c.marketplace, "base_url": c.base_url,
                                   "credentials_ref": c.credentials_ref, "enabled": c.enabled,
                                   "retry_delays_s": c.retry_delays_s, "options": c.options,
                                   "buffer_stock": c.buffer_stock, "max_quantity": c.max_quantity,
                                   "shadow": c.shadow, "quota_scale": c.quota_scale, "quotas": c.quotas}))
        return
    _table(["id", "marketplace", "enabled", "mode", "buffer", "cap", "base URL", "credentials ref", "retry delays (s)"],
           [[c.id, c.marketplace, "yes" if c.enabled else "no", "shadow" if c.shadow else "live", c.buffer_stock,
             c.max_quantity if c.max_quantity is not None else "-", c.base_url, c.credentials_ref,
             ",".join(f"{d:g}" for d in c.retry_delays_s) if c.retry_delays_s else "default"] for c in rows])


def _delays(_ctx, _param, value: str | None) -> list[float] | None:
    if not value:
        return None
    try:
        delays = [float(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter("give seconds separated by commas, e.g. 5,30,120") from None
    if any(d < 0 for d in delays):
        raise click.BadParameter("delays cannot be negative")
    return delays


@channels.command("add")
@click.argument("channel_id")
@click.option("--marketplace", required=True, type=click.Choice(["amazon", "flipkart", "tatacliq"]))
@click.option("--base-url", required=True, help="The marketplace API's base URL for this channel.")
@click.option("--credentials-ref", required=True,
              help="Name of the secret: env WHEEL_SECRET_<REF> or file <WHEEL_SECRETS_DIR>/<ref>.")
@click.option("--retry-delays", callback=_delays, help="Seconds before each retry, e.g. 5,30,120.")
@click.option("--disabled", is_flag=True, help="Add it disabled.")
@click.option("--replace", is_flag=True, help="Overwrite a channel of the same id.")
@click.option("--option", "options", multiple=True, callback=lambda c, p, v: _pairs(v, "KEY=VALUE"),
              help="Marketplace setting KEY=VALUE (Amazon: seller_id, lwa_url; Flipkart: location_id). Repeatable.")
@click.option("--buffer-stock", type=click.IntRange(0), help="Units held back: pushed = quantity - buffer.")
@click.option("--max-quantity", type=click.IntRange(0), help="Never list more than this many units.")
@click.option("--shadow", is_flag=True, help="Shadow mode: record every call it would make, send nothing.")
@click.pass_context
def channels_add(ctx, channel_id, marketplace, base_url, credentials_ref, retry_delays, disabled, replace,
                 options, buffer_stock, max_quantity, shadow) -> None:
    """Add a channel, e.g. `wheelctl channels add UA --marketplace tatacliq --base-url https://... --credentials-ref tatacliq-ua`.

    The secret named by --credentials-ref is Tata CLiQ's bearer token, Amazon's JSON
    {"client_id", "client_secret", "refresh_token"}, or Flipkart's JSON {"app_id", "app_secret"}.
    """
    from wheel.db.models import MARKETPLACES, Channel
    from wheel.services.channels import ChannelError, add_channel
    from wheel.services.schedules import ensure_schedules

    try:
        with _sessions(_settings(ctx)).begin() as session:
            add_channel(session, channel_id=channel_id, marketplace=marketplace, base_url=base_url,
                        credentials_ref=credentials_ref, known_marketplaces=MARKETPLACES,
                        enabled=not disabled, retry_delays_s=retry_delays, replace=replace,
                        options=options or None, buffer_stock=buffer_stock, max_quantity=max_quantity,
                        shadow=shadow or None)
            session.flush()
            created = ensure_schedules(session, session.get(Channel, channel_id))
    except ChannelError as exc:
        _fail(str(exc))
    click.echo(f"channel {channel_id} saved" + (f"; scheduled pulls: {', '.join(created)} (see `wheelctl jobs list`)" if created else ""))


def _pairs(values, form: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r}: give {form}")
        pairs[key.strip()] = rest.strip()
    return pairs


def _quotas(_ctx, _param, values) -> dict[str, list[float]]:
    quotas = {}
    for operation, value in _pairs(values, "OPERATION=RATE/BURST").items():
        try:
            rate, burst = (float(part) for part in value.split("/"))
        except ValueError:
            raise click.BadParameter(f"{operation}={value}: give requests per second and burst, e.g. 5/5") from None
        quotas[operation] = [rate, burst]
    return quotas


@channels.command("set")
@click.argument("channel_id")
@click.option("--base-url", help="The marketplace API's base URL.")
@click.option("--option", "options", multiple=True, callback=lambda c, p, v: _pairs(v, "KEY=VALUE"),
              help="Marketplace setting KEY=VALUE; KEY= removes it. Repeatable.")
@click.option("--buffer-stock", type=click.IntRange(0), help="Units held back: pushed = quantity - buffer.")
@click.option("--max-quantity", type=click.IntRange(0), help="Never list more than this many units.")
@click.option("--no-max-quantity", is_flag=True, help="Remove the cap.")
@click.option("--shadow/--live", default=None, help="Shadow mode (send nothing) or live.")
@click.option("--quota", "quotas", multiple=True, callback=_quotas,
              help="Override a quota: OPERATION=RATE/BURST, e.g. patchListingsItem=5/5. Repeatable.")
@click.option("--quota-scale", type=float, help="Multiply every documented quota (e.g. a raised allowance).")
@click.option("--retry-delays", callback=_delays, help="Seconds before each retry, e.g. 5,30,120.")
@click.pass_context
def channels_set(ctx, channel_id, base_url, options, buffer_stock, max_quantity, no_max_quantity, shadow, quotas,
                 quota_scale, retry_delays) -> None:
    """Change a channel's settings. Buffer and cap changes apply from the next push (or `wheelctl resync`)."""
    from wheel.services.channels import ChannelError, update_channel

    changes = dict(base_url=base_url, options={k: (v or None) for k, v in options.items()} or None,
                   buffer_stock=buffer_stock, max_quantity=max_quantity, shadow=shadow, quotas=quotas or None,
                   quota_scale=quota_scale, retry_delays_s=retry_delays)
    try:
        with _sessions(_settings(ctx)).begin() as session:
            channel = update_channel(session, channel_id, **{k: v for k, v in changes.items() if v is not None})
            if no_max_quantity:
                channel.max_quantity = None
    except ChannelError as exc:
        _fail(str(exc))
    click.echo(f"channel {channel_id} updated")


@channels.command("disable")
@click.argument("channel_id")
@click.pass_context
def channels_disable(ctx: click.Context, channel_id: str) -> None:
    """Stop sending anything to a channel (its items get system/channel-disabled events)."""
    _set_enabled(ctx, channel_id, False)


@channels.command("enable")
@click.argument("channel_id")
@click.pass_context
def channels_enable(ctx: click.Context, channel_id: str) -> None:
    """Start sending to a disabled channel again."""
    _set_enabled(ctx, channel_id, True)


def _set_enabled(ctx: click.Context, channel_id: str, enabled: bool) -> None:
    from wheel.services.channels import ChannelError, set_enabled

    try:
        with _sessions(_settings(ctx)).begin() as session:
            set_enabled(session, channel_id, enabled)
    except ChannelError as exc:
        _fail(str(exc))
    click.echo(f"channel {channel_id} {'enabled' if enabled else 'disabled'}")


# -- OMS queues ---------------------------------------------------------------------------------


@main.group()
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
    from bridge.transports import transport_for_settings

    settings = _settings(ctx)
    body = file.read()
    name = _queue_name(settings, queue)
    transport = transport_for_settings(settings)
    try:
        transport.connect()
        for _ in range(count):
            mid = message_id or uuid.uuid4().hex
            transport.put(name, body, message_id=mid)
    except transport.connection_errors as exc:
        _fail(f"cannot reach the OMS broker at {transport!r}: {exc}")
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
    from bridge.transports import transport_for_settings
    from wheel.oms.orders import validate_document

    settings = _settings(ctx)
    name = {"orders": settings.queue_orders, "cancellations": settings.queue_cancellations}.get(queue, queue)
    transport = transport_for_settings(settings)
    seen = 0
    import time

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
        _fail(f"cannot reach the OMS broker at {transport!r}: {exc}")
    finally:
        transport.close()
    if not ids_only:
        click.echo(f"{seen} message{'s' if seen != 1 else ''} from {name}", err=True)


# -- events -------------------------------------------------------------------------------------


@main.command()
@click.option("--type", "type_", type=click.Choice(["oms", "domain", "system"]), help="Only this type.")
@click.option("--name", help="Only this name; end with * for a prefix (ranging/*).")
@click.option("--channel", help="Only this channel.")
@click.option("--parent", type=int, help="An event and its children (an OMS message and what it caused).")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.pass_context
def events(ctx, type_, name, channel, parent, limit, as_json) -> None:
    """Show the latest events, newest first."""
    from wheel.services.queries import latest_events

    with _sessions(_settings(ctx))() as session:
        rows = latest_events(session, type=type_, name=name, channel_id=channel, parent_id=parent, limit=limit)
    if as_json:
        for e in rows:
            click.echo(json.dumps({"id": e.id, "parent_id": e.parent_id, "type": e.type, "name": e.name,
                                   "level": e.level, "channel_id": e.channel_id, "marketplace": e.marketplace,
                                   "inbox_id": e.inbox_id, "payload": e.payload,
                                   "created_at": e.created_at.isoformat()}))
        return
    _table(["id", "parent", "time", "level", "name", "channel", "detail"],
           [[e.id, e.parent_id or "", e.created_at.strftime("%H:%M:%S.%f")[:-3], e.level, e.name,
             e.channel_id or "", _detail(e.payload)] for e in rows])


def _detail(payload: dict) -> str:
    if "error" in payload:
        return str(payload["error"])[:160]
    if "items" in payload:
        return ", ".join(i.get("sku", "?") for i in payload["items"][:8]) + (" ..." if len(payload["items"]) > 8 else "")
    if "order_id" in payload:
        parts = [f"order {payload['order_id']}"]
        if "message_id" in payload:
            parts.append(f"-> {payload['queue']} as {payload['message_id']}")
        if "lines" in payload:
            parts.append(f"lines {payload['lines']}")
        if "total" in payload:
            parts.append(f"total {payload['total']}")
        if payload.get("whole_order") is not None:
            parts.append("whole order" if payload["whole_order"] else "in part")
        return ", ".join(str(p) for p in parts)
    if "job" in payload:
        return f"{payload['job']} run {payload.get('run')} ({payload.get('trigger', '')})"
    if "queue" in payload:
        return f"{payload['queue']} ({payload.get('bytes', '?')} bytes, inbox {payload.get('inbox_id')})"
    return ""


def _table(headers: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, box=None, pad_edge=False, highlight=False)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


# -- inbox --------------------------------------------------------------------------------------


@main.group()
def inbox() -> None:
    """Read stored OMS messages and replay them after fixing."""


@inbox.command("show")
@click.argument("inbox_id", type=int)
@click.pass_context
def inbox_show(ctx: click.Context, inbox_id: int) -> None:
    """Write a stored message's raw body to standard output."""
    from wheel.db.models import InboxMessage

    with _sessions(_settings(ctx))() as session:
        message = session.get(InboxMessage, inbox_id)
    if message is None:
        _fail(f"no inbox message {inbox_id}")
    click.echo(f"# inbox {message.id} queue={message.queue} status={message.status} "
               f"bytes={message.size} error={message.last_error or '-'}", err=True)
    sys.stdout.buffer.write(message.body)


@inbox.command("replay")
@click.argument("inbox_id", type=int)
@click.option("--body", "body_file", type=click.File("rb"), help="A corrected body (default: the stored one).")
@click.pass_context
def inbox_replay(ctx: click.Context, inbox_id: int, body_file) -> None:
    """Process a stored message again, as a new message (optionally with a corrected body)."""
    from wheel.services.replay import ReplayError, replay
    from workers.app import app
    from workers.dispatch import Dispatcher

    try:
        new_id = replay(_sessions(_settings(ctx)), inbox_id, body_file.read() if body_file else None)
    except ReplayError as exc:
        _fail(str(exc))
    Dispatcher(app).process_message(new_id)
    click.echo(f"replayed inbox {inbox_id} as inbox {new_id}; see `wheelctl events --name 'oms/*' --limit 5`")


# -- scheduled jobs and orders ------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """Scheduled pulls of orders and cancellations, per channel (read by beat on its next tick).

    Cron expressions have 5 fields (minute hour day month weekday), or 6 with seconds last:
    '*/3 * * * *' is every 3 minutes, '* * * * * */10' every 10 seconds. Times are UTC.
    """


def _job_call(ctx: click.Context, action) -> object:
    from wheel.services.schedules import ScheduleError

    try:
        with _sessions(_settings(ctx)).begin() as session:
            return action(session)
    except ScheduleError as exc:
        _fail(str(exc))


def _ago(when, now) -> str:
    if when is None:
        return "-"
    seconds = (now - when).total_seconds()
    if abs(seconds) < 90:
        return f"in {-seconds:.0f}s" if seconds < 0 else f"{seconds:.0f}s ago"
    return when.strftime("%Y-%m-%d %H:%M:%S")


@jobs.command("list")
@click.option("--channel", help="Only this channel.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def jobs_list(ctx: click.Context, channel: str | None, as_json: bool) -> None:
    """Every schedule: cron, on/off, last run (start, end, outcome), next run, watermark."""
    from sqlalchemy import select

    from wheel.db.models import Schedule
    from wheel.services.schedules import last_runs, utcnow

    with _sessions(_settings(ctx))() as session:
        query = select(Schedule).order_by(Schedule.channel_id, Schedule.job)
        rows = session.execute(query.where(Schedule.channel_id == channel) if channel else query).scalars().all()
        runs = last_runs(session, [r.id for r in rows])
    now = utcnow()
    if as_json:
        for r in rows:
            run = runs.get(r.id)
            click.echo(json.dumps({
                "channel": r.channel_id, "job": r.job, "cron": r.cron, "enabled": r.enabled,
                "next_run_at": r.next_run_at and r.next_run_at.isoformat(),
                "last_started_at": r.last_started_at and r.last_started_at.isoformat(),
                "last_finished_at": r.last_finished_at and r.last_finished_at.isoformat(),
                "last_outcome": r.last_outcome, "last_error": r.last_error,
                "watermark": r.watermark and r.watermark.isoformat(), "resuming": r.cursor is not None,
                "last_run": run and {"id": run.id, "status": run.status, "trigger": run.trigger, "orders": run.orders,
                                     "cancellations": run.cancellations, "calls": run.calls},
            }))
        return
    if not rows:
        click.echo("no schedules" + (f" for {channel}" if channel else "") + " (channels get theirs when added)")
        return
    _table(["channel", "job", "cron", "on", "last start", "last end", "outcome", "next run", "watermark", "last run"],
           [[r.channel_id, r.job, r.cron, "yes" if r.enabled else "no", _ago(r.last_started_at, now),
             _ago(r.last_finished_at, now), (r.last_outcome or "-") + (f": {r.last_error[:60]}" if r.last_error else ""),
             _ago(r.next_run_at, now) if r.enabled else "-", _ago(r.watermark, now),
             (f"{runs[r.id].orders} orders, {runs[r.id].cancellations} cancellations, {runs[r.id].calls} calls"
              if r.id in runs else "-")] for r in rows])


@jobs.command("set")
@click.argument("channel")
@click.argument("job", type=click.Choice(["orders", "cancellations"]))
@click.argument("cron")
@click.pass_context
def jobs_set(ctx: click.Context, channel: str, job: str, cron: str) -> None:
    """Set a job's cron expression, e.g. `wheelctl jobs set UA orders "*/2 * * * *"`."""
    from wheel.services.schedules import set_cron

    def action(session):
        schedule = set_cron(session, channel, job, cron)
        return schedule.cron, schedule.next_run_at

    expression, next_run = _job_call(ctx, action)
    click.echo(f"{channel} {job}: {expression}; next run {next_run:%Y-%m-%d %H:%M:%S} UTC")


def _jobs_enable(ctx, channel: str, job: str, enabled: bool) -> None:
    from wheel.services.schedules import set_enabled

    _job_call(ctx, lambda session: set_enabled(session, channel, job, enabled))
    click.echo(f"{channel} {job} {'enabled' if enabled else 'disabled'}")


@jobs.command("enable")
@click.argument("channel")
@click.argument("job", type=click.Choice(["orders", "cancellations"]))
@click.pass_context
def jobs_enable(ctx: click.Context, channel: str, job: str) -> None:
    """Switch a job on (its next run is the next cron time from now)."""
    _jobs_enable(ctx, channel, job, True)


@jobs.command("disable")
@click.argument("channel")
@click.argument("job", type=click.Choice(["orders", "cancellations"]))
@click.pass_context
def jobs_disable(ctx: click.Context, channel: str, job: str) -> None:
    """Switch a job off (a run in progress finishes)."""
    _jobs_enable(ctx, channel, job, False)


@jobs.command("run-now")
@click.argument("channel")
@click.argument("job", type=click.Choice(["orders", "cancellations"]))
@click.pass_context
def jobs_run_now(ctx: click.Context, channel: str, job: str) -> None:
    """Run a job now, outside its schedule (the workers must be running)."""
    from wheel.services.schedules import run_now
    from workers.app import app
    from workers.dispatch import Dispatcher

    run = _job_call(ctx, lambda session: run_now(session, channel, job))
    Dispatcher(app).run_job(run.run_id, run.marketplace)
    click.echo(f"run {run.run_id} sent: {channel} {job} (follow it with `wheelctl jobs list` or "
               f"`wheelctl events --name 'system.cron/*' --channel {channel}`)")


@main.group()
def orders() -> None:
    """Orders and cancellations pulled from the marketplaces, and where they are."""


@orders.command("list")
@click.option("--channel", help="Only this channel.")
@click.option("--status", type=click.Choice(["ready", "sent", "failed", "held"]),
              help="ready: waiting in the outbox; sent: on the OMS queue; failed: could not be mapped (kept, with the "
                   "reason); held: cancellations waiting for their order.")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def orders_list(ctx: click.Context, channel: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """The latest orders (and their cancellations), newest first."""
    from wheel.services.queries import latest_orders

    with _sessions(_settings(ctx))() as session:
        rows = latest_orders(session, channel_id=channel, status=status, limit=limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    if not rows:
        click.echo("no orders" + (f" on {channel}" if channel else "") + (f" with status {status}" if status else ""))
        return
    _table(["channel", "order", "status", "lines", "total", "received", "sent", "cancelled", "detail"],
           [[r["channel"], r["order_id"], r["status"], r["lines"], r["total"] or "", r["received_at"].strftime("%m-%d %H:%M:%S"),
             r["sent_at"].strftime("%H:%M:%S") if r["sent_at"] else "-", r["cancelled"] or "-", (r["failure"] or "")[:80]]
            for r in rows])


# -- demo and maintenance -------------------------------------------------------------------------


@main.group()
def demo() -> None:
    """The demo set-up `make run` uses."""


@demo.command("seed")
@click.option("--sandbox-url", default=None, help="Sandbox base URL (default: from WHEEL_SANDBOX_HOST/PORT).")
@click.option("--sandbox-config", type=click.Path(dir_okay=False), default="var/sandbox.json", show_default=True,
              help="Where to write the sandbox's channel config.")
@click.pass_context
def demo_seed(ctx: click.Context, sandbox_url: str | None, sandbox_config: str) -> None:
    """Seed the demo channels (Tata CLiQ UA succeeds, UB gets HTTP 500; Flipkart UF; Amazon UZ)."""
    from wheel.db.models import MARKETPLACES
    from wheel.db.models import Channel
    from wheel.demo import DEMO_CHANNELS, DEMO_RETRY_DELAYS_S, options, sandbox_config as make_config
    from wheel.services.channels import add_channel
    from wheel.services.schedules import ensure_schedules

    settings = _settings(ctx)
    base = sandbox_url or f"http://{settings.sandbox_host}:{settings.sandbox_port}"
    settings.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _sessions(settings).begin() as session:
        for channel in DEMO_CHANNELS:
            add_channel(session, channel_id=channel.id, marketplace=channel.marketplace,
                        base_url=f"{base}/{channel.marketplace}", credentials_ref=channel.credentials_ref,
                        known_marketplaces=MARKETPLACES, retry_delays_s=DEMO_RETRY_DELAYS_S, replace=True,
                        options=options(channel, base))
            ensure_schedules(session, session.get(Channel, channel.id))
            secret = settings.secrets_dir / channel.credentials_ref
            secret.write_text(channel.secret)
            secret.chmod(0o600)
    Path(sandbox_config).parent.mkdir(parents=True, exist_ok=True)
    Path(sandbox_config).write_text(json.dumps(make_config(), indent=2))
    click.echo(f"seeded demo channels {', '.join(c.id for c in DEMO_CHANNELS)} "
               f"(secrets in {settings.secrets_dir}, sandbox config in {sandbox_config})")


@demo.command("orders")
@click.option("--channel", "channels", multiple=True, help="Sandbox channel(s) (default: UA, UF and UZ).")
@click.option("--count", type=click.IntRange(0, 100000), default=5, show_default=True, help="Orders per channel.")
@click.option("--cancel", type=click.IntRange(0, 100000), default=0, show_default=True,
              help="Also cancel this many of the channel's oldest open orders (a third of them in part). Cancel "
                   "orders Wheel has pulled already: an order cancelled before its pull never reaches the OMS, and "
                   "its cancellation waits (orders list --status held).")
@click.option("--sandbox-url", help="The sandbox's URL [http://WHEEL_SANDBOX_HOST:WHEEL_SANDBOX_PORT].")
@click.pass_context
def demo_orders(ctx: click.Context, channels: tuple[str, ...], count: int, cancel: int, sandbox_url: str | None) -> None:
    """Create orders (and cancellations) in the sandbox, for beat's pulls to bring to the OMS queues.

    Watch them arrive with `wheelctl oms tail orders` and `wheelctl orders list`; then cancel some
    with `wheelctl demo orders --count 0 --cancel 2`.
    """
    import requests

    settings = _settings(ctx)
    base = sandbox_url or f"http://{settings.sandbox_host}:{settings.sandbox_port}"
    for channel in channels or ("UA", "UF", "UZ"):
        try:
            if count:
                made = requests.post(f"{base}/_sandbox/orders", json={"channel": channel, "count": count, "lines_per_order": 2},
                                     timeout=30)
                made.raise_for_status()
                click.echo(f"{channel}: {len(made.json()['created'])} orders created")
            if cancel:
                done = requests.post(f"{base}/_sandbox/cancellations",
                                     json={"channel": channel, "count": cancel, "partial_share": 0.33}, timeout=30)
                done.raise_for_status()
                click.echo(f"{channel}: {len(done.json()['cancelled'])} orders cancelled")
        except requests.RequestException as exc:
            detail = getattr(getattr(exc, "response", None), "text", "") or str(exc)
            _fail(f"the sandbox at {base} refused or is not running (start it with `make run`): {detail[:300]}")
    click.echo("beat pulls them on each channel's schedule (`wheelctl jobs list`); `wheelctl jobs run-now UA orders` pulls at once")


@demo.command("banner")
@click.pass_context
def demo_banner(ctx: click.Context) -> None:
    """Print what `make run` starts, where, and the command that sends a sample message."""
    from sqlalchemy.engine import make_url

    from wheel.settings import redact_url
    from workers.queues import ALL_QUEUES

    s = _settings(ctx)
    sandbox = f"http://{s.sandbox_host}:{s.sandbox_port}"
    db = make_url(s.database_url)
    lines = [
        "Wheel is starting (each process's output is prefixed with its name; Ctrl-C stops them all):",
        f"  bridge    OMS queues {', '.join(s.oms_queues.values())} on {redact_url(s.oms_url.get_secret_value())}",
        f"  workers   Celery queues {', '.join(ALL_QUEUES)} on {redact_url(s.redis_url)}",
        f"  beat      the sweeper every {s.sweeper_interval_s:g}s (re-sends work Redis dropped)",
        f"  sandbox   {sandbox}  (calls: {sandbox}/_sandbox/calls, state: {sandbox}/_sandbox/state/UA)",
        f"  flower    http://{s.flower_address}:{s.flower_port}",
        f"  database  {db.database} on {db.host}:{db.port or 5432}; the event log: .venv/bin/wheelctl events",
        "",
        "Send the sample ranging message (UA succeeds, UB gets HTTP 500, retried then failed), then read the log:",
        "  .venv/bin/wheelctl oms put ranging tests/samples/ranging.xml && sleep 5 && .venv/bin/wheelctl events",
        "",
    ]
    click.echo("\n".join(lines))


@main.command()
@click.argument("channel_id")
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable); default: every SKU Wheel knows.")
@click.option("--dry-run", is_flag=True, help="Show the differences; push nothing.")
@click.option("--push-all", is_flag=True,
              help="Do not read the marketplace; push the whole desired state (for Tata CLiQ, which cannot be read).")
@click.pass_context
def resync(ctx, channel_id: str, skus: tuple[str, ...], dry_run: bool, push_all: bool) -> None:
    """Compare what the marketplace holds with what Wheel wants, and push the differences."""
    import os
    import time

    from rich.progress import Progress

    from wheel.db.models import Channel
    from wheel.marketplaces import adapter_for
    from wheel.marketplaces.base import HttpConfig, QuotaWait
    from wheel.marketplaces.errors import MarketplaceError
    from wheel.secrets import SecretStore
    from wheel.services import resync as reconcile
    from wheel.services.sync import channel_config, run_sync
    from workers.container import Container

    settings = _settings(ctx)
    sessions = _sessions(settings)
    with sessions() as session:
        channel = session.get(Channel, channel_id)
    if channel is None:
        _fail(f"no channel {channel_id}")
    container = Container(settings)
    try:
        adapter = adapter_for(channel_config(channel), HttpConfig(settings.http_connect_timeout_s, settings.http_read_timeout_s),
                              SecretStore(os.environ, settings.secrets_dir))
    except Exception as exc:  # noqa: BLE001 - the reason is the message
        _fail(f"cannot reach {channel.marketplace} for {channel_id}: {exc}")
    gate = container.quota_gate(channel, adapter)
    listings = reconcile.desired(sessions, channel_id, skus)
    if not listings:
        _fail(f"Wheel holds no desired state for {channel_id}" + (f" and SKUs {', '.join(skus)}" if skus else ""))
    if push_all:
        if dry_run:
            click.echo(f"would push the desired state of {len(listings)} SKUs")
            return
        marked = reconcile.mark_all_for_push(sessions, channel_id, skus)
    else:
        if not adapter.capabilities.reads_listings:
            _fail(f"{channel.marketplace} offers no way to read listings back; use --push-all to push the desired state")
        with Progress(transient=True) as progress:
            task = progress.add_task(f"reading {len(listings)} SKUs from {channel.marketplace}", total=len(listings))
            try:
                held = reconcile.read(adapter, gate, [l.sku for l in listings], lambda n: progress.advance(task, n))
            except (MarketplaceError, QuotaWait) as exc:
                _fail(f"reading {channel_id} failed: {exc}")
        differences = reconcile.compare(channel, listings, held)
        _table(["sku", "field", "wheel wants", "marketplace has"],
               [[d.sku, d.field, d.wheel, "-" if d.marketplace is None else d.marketplace] for d in differences])
        click.echo(f"{len(differences)} differences in {len({d.sku for d in differences})} of {len(listings)} SKUs")
        if dry_run or not differences:
            return
        marked = reconcile.mark_for_push(sessions, channel_id, differences)
    pushed = calls = 0
    failures = 0
    with Progress() as progress:
        task = progress.add_task(f"pushing {marked} SKUs to {channel_id}", total=marked)
        while True:
            outcome = run_sync(sessions, channel_id, adapters=lambda _: adapter, gate_for=lambda *_: gate,
                               worker=f"wheelctl-resync:{os.getpid()}", lease_s=settings.push_lease_s,
                               default_retry_delays_s=settings.push_retry_delays_s, time_budget_s=5, settle_s=0,
                               request_budget_s=settings.http_connect_timeout_s + settings.http_read_timeout_s)
            pushed, calls, failures = pushed + outcome.skus, calls + outcome.calls, failures + len(outcome.alerts)
            if outcome.blocked:
                _fail(f"{channel_id} cannot push: {outcome.blocked}; the values wait for the channel to be fixed")
            progress.update(task, completed=min(pushed, marked))
            if outcome.retry_in_s is not None:
                time.sleep(min(outcome.retry_in_s, 30))
            elif not outcome.more:
                break
    click.echo(f"resync of {channel_id}: {pushed} SKU pushes in {calls} calls, {failures} failure events; "
               f"see `wheelctl events --channel {channel_id}`")


@main.command()
@click.pass_context
def sweep(ctx: click.Context) -> None:
    """Re-send the tasks of work still pending past its deadline (beat does this periodically)."""
    from wheel.services.sweeper import sweep as run_sweep
    from workers.app import app
    from workers.dispatch import Dispatcher

    settings = _settings(ctx)
    dispatch = Dispatcher(app)
    report = run_sweep(_sessions(settings), deadline_s=settings.sweeper_deadline_s,
                       send_process=dispatch.process_message, send_sync=dispatch.sync)
    click.echo(f"re-sent {report.inbox} message tasks and {report.channels} channel syncs")


if __name__ == "__main__":
    main()
