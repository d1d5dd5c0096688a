"""Orders and cancellations pulled from the marketplaces, and where each one is."""

from __future__ import annotations

import json

import click

from wheel.services.order_recovery import RecoveryError, expire_cancellation, release_cancellation, retry_order
from wheel.services.pulls import OmsQueues
from wheel.services.queries import latest_orders
from workers import bootstrap
from workers.cli.output import confirm_or_refuse, display_time, fail, sessions_of, settings_of, table


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
    table(["channel", "order", "status", "lines", "total", "received", "sent", "cancelled", "detail"],
           [[r["channel"], r["order_id"], r["status"], r["lines"], r["total"] or "", display_time(r["received_at"]),
             display_time(r["sent_at"]), r["cancelled"] or "-", (r["failure"] or "")[:80]]
            for r in rows])


def _queues(ctx: click.Context) -> OmsQueues:
    settings = settings_of(ctx)
    return OmsQueues(settings.queue_orders, settings.queue_cancellations)


def _publish_soon(ctx: click.Context) -> None:
    bootstrap.dispatcher(bootstrap.celery_app(settings_of(ctx))).publish_soon()


@orders.command("retry")
@click.argument("channel")
@click.argument("order_id")
@click.pass_context
def orders_retry(ctx: click.Context, channel: str, order_id: str) -> None:
    """Map a failed order again from what the marketplace sent (kept with it), with today's Wheel
    and channel settings; if it maps now, it goes to the OMS, and cancellations held for it after it.

    For an order that failed because of a channel setting (fix it with `wheelctl channels set`) or
    a mapping Wheel has since fixed. An order the marketplace itself changed since is read again by
    a pull: `wheelctl jobs rewind`.
    """
    try:
        done = retry_order(sessions_of(ctx), channel, order_id, _queues(ctx))
    except RecoveryError as exc:
        fail(str(exc))
    if not done.sent:
        fail(f"order {order_id} on {channel} still cannot be mapped: {done.error}")
    _publish_soon(ctx)
    click.echo(f"order {order_id} on {channel} maps now and waits in the outbox for the OMS"
               + (f", with {done.cancellations} held cancellation(s) after it" if done.cancellations else "")
               + f"; follow it with `wheelctl orders list --channel {channel}`")


@orders.command("expire")
@click.argument("channel")
@click.argument("order_id")
@click.pass_context
def orders_expire(ctx: click.Context, channel: str, order_id: str) -> None:
    """Stop waiting for the order of a held cancellation (as Wheel does by itself after
    WHEEL_HELD_CANCELLATION_MAX_AGE_S). If the order does come, the cancellation still follows it."""
    try:
        lines = expire_cancellation(sessions_of(ctx), channel, order_id)
    except RecoveryError as exc:
        fail(str(exc))
    click.echo(f"the cancellation of order {order_id} on {channel} ({lines} line{'s' if lines != 1 else ''}) no "
               "longer waits for its order; it still follows the order if the order comes")


@orders.command("release")
@click.argument("channel")
@click.argument("order_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed from a script).")
@click.pass_context
def orders_release(ctx: click.Context, channel: str, order_id: str, yes: bool) -> None:
    """Send a held cancellation to the OMS now, without its order: only for an order the OMS has
    from elsewhere (entered by hand). Wheel has not sent the order: if the marketplace's order
    comes later, Wheel sends it then, after its cancellation."""
    confirm_or_refuse(f"Send the cancellation of order {order_id} on {channel} to the OMS without its order?", yes)
    try:
        outboxed = release_cancellation(sessions_of(ctx), channel, order_id, _queues(ctx))
    except RecoveryError as exc:
        fail(str(exc))
    if outboxed:
        _publish_soon(ctx)
        click.echo(f"the cancellation of order {order_id} on {channel} waits in the outbox for the OMS")
    else:
        click.echo(f"nothing of the cancellation of order {order_id} on {channel} can go to the OMS without its "
                   f"order (see `wheelctl events --name 'cancellation/*' --channel {channel}`)")


COMMANDS = [orders]
