"""Orders and cancellations pulled from the marketplaces, and where each one is."""

from __future__ import annotations

import json

import click

from wheel.services.queries import latest_orders
from wheel.timefmt import show
from workers.cli.output import display_tz, sessions_of, table


@click.group()
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
    """The latest orders (and their cancellations), newest first (times in WHEEL_DISPLAY_TZ; --json in UTC)."""

    with sessions_of(ctx)() as session:
        rows = latest_orders(session, channel_id=channel, status=status, limit=limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    if not rows:
        click.echo("no orders" + (f" on {channel}" if channel else "") + (f" with status {status}" if status else ""))
        return
    tz = display_tz(ctx)
    table(["channel", "order", "status", "lines", "total", "received", "sent", "cancelled", "detail"],
           [[r["channel"], r["order_id"], r["status"], r["lines"], r["total"] or "", show(r["received_at"], tz, "%m-%d %H:%M:%S %Z"),
             show(r["sent_at"], tz, "%H:%M:%S %Z"), r["cancelled"] or "-", (r["failure"] or "")[:80]]
            for r in rows])


COMMANDS = [orders]
