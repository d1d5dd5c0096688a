"""The event log: what happened to each OMS message, listing, order and process."""

from __future__ import annotations

import json

import click

from wheel.services.queries import LEVELS, latest_events
from workers.cli.output import WHEN, WHEN_HELP, display_time, sessions_of, table


@click.command()
@click.option("--type", "type_", type=click.Choice(["oms", "domain", "system"]), help="Only this type.")
@click.option("--name", help="Only this name; end with * for a prefix (ranging/*).")
@click.option("--channel", help="Only this channel.")
@click.option("--parent", type=int, help="An event and its children (an OMS message and what it caused).")
@click.option("--level", type=click.Choice(LEVELS), help="This level and worse: --level warning shows warnings and errors.")
@click.option("--since", type=WHEN, help=f"Only events since then: {WHEN_HELP}.")
@click.option("--sku", help="Only events that name this SKU (OMS items, pushes, orders, cancellations).")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table (times in UTC).")
@click.pass_context
def events(ctx, type_, name, channel, parent, level, since, sku, limit, as_json) -> None:
    """Show the latest events, newest first (times in WHEEL_DISPLAY_TZ; --json in UTC)."""
    with sessions_of(ctx)() as session:
        rows = latest_events(session, type=type_, name=name, channel_id=channel, parent_id=parent, level=level,
                             since=since, sku=sku, limit=limit)
    if as_json:
        for e in rows:
            click.echo(json.dumps({"id": e.id, "parent_id": e.parent_id, "type": e.type, "name": e.name,
                                   "level": e.level, "channel_id": e.channel_id, "marketplace": e.marketplace,
                                   "inbox_id": e.inbox_id, "payload": e.payload,
                                   "created_at": e.created_at.isoformat()}))
        return
    table(["id", "parent", "time", "level", "name", "channel", "detail"],
          [[e.id, e.parent_id or "", display_time(e.created_at, milliseconds=True), e.level, e.name,
            e.channel_id or "", detail(e.payload)] for e in rows])


def detail(payload: dict) -> str:
    """An event's payload in a few words, for the table."""
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


COMMANDS = [events]
