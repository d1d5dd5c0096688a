"""Stored OMS messages: list them, show one with what it caused, replay one or many.

The work is wheel/services/triage.py's and wheel/services/replay.py's; `wheelctl inbox show|replay`
(workers/cli/oms.py) are the older names of `messages show|replay ID`.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click

from wheel.services.replay import ReplayError, replay
from wheel.services.triage import MessageFilter, failed_still, list_messages, message_detail, replay_many
from workers import bootstrap
from workers.cli.events import detail
from workers.cli.output import (
    WHEN,
    WHEN_HELP,
    confirm_or_refuse,
    display_time,
    fail,
    json_line,
    sessions_of,
    settings_of,
    table,
)

# A bulk replay takes at most this many messages; narrow the time range for more.
MAX_BULK = 10000


@click.group()
def messages() -> None:
    """Stored OMS messages (every one the bridge took off the OMS queues): find the ones that
    failed, read one with what it caused, and replay them once the cause is fixed."""


@messages.command("list")
@click.option("--failed", is_flag=True, help="Only messages that failed (parsing or processing).")
@click.option("--queue", help="Only this OMS queue (its name, e.g. OMS.PRICING).")
@click.option("--since", type=WHEN, help=f"Only messages received since then: {WHEN_HELP}.")
@click.option("--channel", help='Only messages whose items name this channel (ChannelID="UA" in the body).')
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (times in UTC).")
@click.pass_context
def messages_list(ctx, failed: bool, queue: str | None, since: datetime | None, channel: str | None, limit: int,
                  as_json: bool) -> None:
    """The latest stored messages, newest first: status, queue, size, time received, last error."""
    queue = settings_of(ctx).oms_queues.get(queue, queue) if queue else None
    with sessions_of(ctx)() as session:
        rows = list_messages(session, MessageFilter(failed=failed, queue=queue, since=since, channel=channel, limit=limit))
    if as_json:
        for row in rows:
            json_line(row.as_dict())
        return
    if not rows:
        click.echo("no messages" + (" that failed" if failed else "") + (f" on {queue}" if queue else "")
                   + (f" naming {channel}" if channel else "") + (f" since {display_time(since)}" if since else ""))
        return
    table(["id", "status", "queue", "bytes", "received", "replays", "last error"],
          [[r.id, r.status, r.queue, r.size, display_time(r.received_at), _replay_note(r), (r.last_error or "")[:100]]
           for r in rows])


def _replay_note(row) -> str:
    parts = [f"replay of {row.replay_of}"] if row.replay_of else []
    parts += [f"{i} ({s})" for i, s in row.replays]
    return ", ".join(parts) or "-"


@messages.command("show")
@click.argument("inbox_id", type=int)
@click.option("--body-only", is_flag=True, help="Only the raw body, byte for byte (to fix it and replay it with --body).")
@click.pass_context
def messages_show(ctx, inbox_id: int, body_only: bool) -> None:
    """A stored message: what became of it, what its body parses to today, the events it caused,
    and its raw body (on standard output; the rest on standard error with --body-only)."""
    settings = settings_of(ctx)
    with sessions_of(ctx)() as session:
        found = message_detail(session, inbox_id, operation_for_queue=settings.operation_for_queue,
                               max_message_bytes=settings.max_message_bytes)
    if found is None:
        fail(f"no inbox message {inbox_id}")
    if body_only:
        sys.stdout.buffer.write(found.body)
        return
    m, parsed = found.message, found.parsed
    click.secho(f"message {m.id}: {m.status}", bold=True)
    click.echo(f"  queue      {m.queue} ({parsed.operation or 'not an OMS queue Wheel reads'}), {m.size:,} bytes")
    click.echo(f"  received   {display_time(m.received_at)}; processed {display_time(m.processed_at)} "
               f"after {m.attempts} attempt{'s' if m.attempts != 1 else ''}")
    if m.last_error:
        click.echo(f"  error      {m.last_error}")
    if m.replay_of:
        click.echo(f"  replays    message {m.replay_of} (in its place: nothing newer is overwritten)")
    for replay_id, status in m.replays:
        click.echo(f"  replayed   as message {replay_id} ({status})")
    if parsed.error:
        click.echo(f"  parsed now fails: {parsed.error}")
    else:
        per_channel = ", ".join(f"{channel} {count}" for channel, count in sorted(parsed.channels.items()))
        click.echo(f"  parsed now {parsed.items} item{'s' if parsed.items != 1 else ''} ({per_channel})")
    if found.events:
        click.echo("")
        table(["event", "parent", "time", "level", "name", "channel", "detail"],
              [[e.id, e.parent_id or "", display_time(e.created_at), e.level, e.name, e.channel_id or "",
                detail(e.payload)] for e in found.events])
    else:
        click.echo("  no events: no worker has taken it yet")
    click.echo("")
    click.secho("--- body", fg="cyan")
    sys.stdout.flush()
    sys.stdout.buffer.write(found.body)
    if not found.body.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")


def replay_one(ctx: click.Context, inbox_id: int, body: bytes | None) -> None:
    """Replay one message (optionally with a corrected body) and send it to the workers."""
    try:
        new_id = replay(sessions_of(ctx), inbox_id, body)
    except ReplayError as exc:
        fail(str(exc))
    bootstrap.dispatcher(bootstrap.celery_app(settings_of(ctx))).process_message(new_id)
    click.echo(f"replayed inbox {inbox_id} as inbox {new_id}; see `wheelctl events --name 'oms/*' --limit 5`")


@messages.command("replay")
@click.argument("inbox_id", type=int, required=False)
@click.option("--body", "body_file", type=click.File("rb"), help="One message: a corrected body (default: the stored one).")
@click.option("--channel", help="Many messages: those naming this channel, received between --since and --until.")
@click.option("--since", type=WHEN, help=f"With --channel: from then ({WHEN_HELP}).")
@click.option("--until", type=WHEN, help="With --channel: up to then (default: now).")
@click.option("--failed-only", is_flag=True, help="With --channel: only messages that failed and no replay has processed since.")
@click.option("--dry-run", is_flag=True, help="With --channel: list what would be replayed, replay nothing.")
@click.option("--yes", is_flag=True, help="With --channel: do not ask for confirmation (needed from a script).")
@click.pass_context
def messages_replay(ctx, inbox_id: int | None, body_file, channel: str | None, since: datetime | None,
                    until: datetime | None, failed_only: bool, dry_run: bool, yes: bool) -> None:
    """Process stored messages again, each in its own place in the OMS's order.

    `messages replay ID [--body fixed.xml]` replays one message, with its stored body or a corrected
    one. `messages replay --channel UA --since 2h [--until ...] [--failed-only]` replays every
    message from the OMS (not replays) naming the channel in that time, oldest first, after asking.

    A replay keeps the place of the message it replays: a value it sets never overwrites a newer
    one (it is logged as superseded), and it replaces older ones. A message is replayed whole,
    items of other channels too, under the same rule.
    """
    if inbox_id is not None:
        if channel or since or until or failed_only or dry_run:
            fail("give a message id, or --channel with --since (not both)")
        replay_one(ctx, inbox_id, body_file.read() if body_file else None)
        return
    if not channel or since is None:
        fail("give a message id, or --channel and --since for the messages of a channel over a time")
    if body_file:
        fail("--body corrects one message: give its id")
    until = until or datetime.now(timezone.utc)
    if until <= since:
        fail(f"--until ({display_time(until)}) is not after --since ({display_time(since)})")
    with sessions_of(ctx)() as session:
        found = list_messages(session, MessageFilter(channel=channel, since=since, until=until, originals=True,
                                                     failed=failed_only, limit=MAX_BULK + 1))
    if len(found) > MAX_BULK:
        fail(f"more than {MAX_BULK} messages between {display_time(since)} and {display_time(until)}; "
             "replay a shorter time at a time")
    chosen = sorted(failed_still(found) if failed_only else found, key=lambda m: m.id)
    what = (f"{len(chosen)} {'failed ' if failed_only else ''}message{'s' if len(chosen) != 1 else ''} naming "
            f"{channel} received between {display_time(since)} and {display_time(until)}")
    if not chosen:
        click.echo(f"nothing to replay: {what}")
        return
    table(["id", "status", "queue", "bytes", "received", "replays", "last error"],
          [[m.id, m.status, m.queue, m.size, display_time(m.received_at), _replay_note(m), (m.last_error or "")[:80]]
           for m in chosen])
    if dry_run:
        click.echo(f"would replay {what}")
        return
    confirm_or_refuse(f"Replay {what} (their values go to the marketplaces)?", yes)
    dispatcher = bootstrap.dispatcher(bootstrap.celery_app(settings_of(ctx)))
    done = replay_many(sessions_of(ctx), [m.id for m in chosen], dispatcher.process_message)
    click.echo(f"replayed {len(done)} message{'s' if len(done) != 1 else ''} as {done[0][1]}"
               + (f"..{done[-1][1]}" if len(done) > 1 else "") + "; follow them with "
               f"`wheelctl messages list --since 10m` and `wheelctl events --channel {channel} --level warning`")


COMMANDS = [messages]
