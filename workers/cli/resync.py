"""`wheelctl resync`: compare a marketplace with Wheel's desired state and push the differences.

The work is wheel/services/resync.py's; this module only draws its progress.
"""

from __future__ import annotations

import os
import sys

import click
from rich.progress import Progress

from wheel.db.models import Channel
from wheel.marketplaces.base import QuotaWait
from wheel.marketplaces.errors import MarketplaceError
from wheel.services import resync
from workers import bootstrap
from workers.cli.output import confirm_or_refuse, fail, sessions_of, settings_of, table


@click.command("resync")
@click.argument("channel_id")
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeatable); default: every SKU Wheel knows.")
@click.option("--dry-run", is_flag=True, help="Show the differences; push nothing.")
@click.option("--push-all", is_flag=True,
              help="Do not read the marketplace; push the whole desired state (for Tata CLiQ, which cannot be read).")
@click.option("--yes", is_flag=True, help="Push without asking (needed from a script: without a terminal, "
                                        "a resync that would push is refused).")
@click.pass_context
def resync_command(ctx, channel_id: str, skus: tuple[str, ...], dry_run: bool, push_all: bool, yes: bool) -> None:
    """Compare what the marketplace holds with what Wheel wants, and push the differences.

    It asks before pushing to the marketplace, unless --yes.
    """
    if not (dry_run or yes or sys.stdin.isatty()):
        confirm_or_refuse(f"resync {channel_id}", yes)  # refuses at once, before any quota is spent
    settings = settings_of(ctx)
    sessions = sessions_of(ctx)
    with sessions() as session:
        channel = session.get(Channel, channel_id)
    if channel is None:
        fail(f"no channel {channel_id}")
    try:
        adapter, gate = bootstrap.channel_adapter(settings, channel)
    except Exception as exc:  # noqa: BLE001 - the reason is the message
        fail(f"cannot reach {channel.marketplace} for {channel_id}: {exc}")
    listings = resync.desired(sessions, channel_id, skus)
    if not listings:
        fail(f"Wheel holds no desired state for {channel_id}" + (f" and SKUs {', '.join(skus)}" if skus else ""))
    if push_all:
        if dry_run:
            click.echo(f"would push the desired state of {len(listings)} SKUs")
            return
        confirm_or_refuse(f"Push the desired state of {len(listings)} SKUs to {channel_id} ({channel.marketplace})?", yes)
        marked = resync.mark_all_for_push(sessions, channel_id, skus)
    else:
        if not adapter.capabilities.reads_listings:
            fail(f"{channel.marketplace} offers no way to read listings back; use --push-all to push the desired state")
        with Progress(transient=True) as progress:
            task = progress.add_task(f"reading {len(listings)} SKUs from {channel.marketplace}", total=len(listings))
            try:
                held = resync.read(adapter, gate, [listing.sku for listing in listings],
                                           lambda n: progress.advance(task, n))
            except (MarketplaceError, QuotaWait) as exc:
                fail(f"reading {channel_id} failed: {exc}")
        differences = resync.compare(channel, listings, held)
        table(["sku", "field", "wheel wants", "marketplace has"],
              [[d.sku, d.field, d.wheel, "-" if d.marketplace is None else d.marketplace] for d in differences])
        click.echo(f"{len(differences)} differences in {len({d.sku for d in differences})} of {len(listings)} SKUs")
        if dry_run or not differences:
            return
        confirm_or_refuse(f"Push {len({d.sku for d in differences})} SKUs to {channel_id} ({channel.marketplace})?", yes)
        marked = resync.mark_for_push(sessions, channel_id, differences)
    with Progress() as progress:
        task = progress.add_task(f"pushing {marked} SKUs to {channel_id}", total=marked)
        result = resync.push_marked(
            sessions, channel_id, adapter, gate, worker=f"wheelctl-resync:{os.getpid()}",
            lease_s=settings.push_lease_s, retry_delays_s=settings.push_retry_delays_s,
            request_budget_s=settings.http_connect_timeout_s + settings.http_read_timeout_s,
            progress=lambda pushed: progress.update(task, completed=min(pushed, marked)))
    if result.blocked:
        fail(f"{channel_id} cannot push: {result.blocked}; the values wait for the channel to be fixed")
    click.echo(f"resync of {channel_id}: {result.pushed} SKU pushes in {result.calls} calls, {result.failures} failure "
               f"events; see `wheelctl events --channel {channel_id}`")


COMMANDS = [resync_command]
