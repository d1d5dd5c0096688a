"""A full resync, for when a marketplace and Wheel disagree: read what the marketplace holds,
compare it with the desired state (the reconciliation report), and push the differences."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Channel, Listing
from wheel.domain import MarketplaceListing
from wheel.marketplaces.base import MarketplaceAdapter, QuotaGate
from wheel.services.sync import effective_quantity, run_sync

# Fields made due again: the next sync run pushes the desired values.
_DUE_AGAIN = ("dirty = true, dirty_since = coalesce(dirty_since, now()), attempts = 0, next_attempt_at = now() "
              "WHERE channel_id = :c AND sku = ANY(:skus)")
MARK_FOR_PUSH = {
    "ranged": text("UPDATE listings SET ranged_settled = 0, " + _DUE_AGAIN),
    "quantity": text("UPDATE listings SET quantity_settled = 0, " + _DUE_AGAIN),
    "price": text("UPDATE listings SET price_settled = 0, " + _DUE_AGAIN),
}
MARK_ALL_FOR_PUSH = text(
    "UPDATE listings SET ranged_settled = 0, quantity_settled = 0, price_settled = 0, dirty = true, "
    "dirty_since = coalesce(dirty_since, now()), attempts = 0, next_attempt_at = now() "
    "WHERE channel_id = :c AND (:all OR sku = ANY(:skus)) "
    "AND (ranged_version > 0 OR quantity_version > 0 OR price_version > 0)"
)
READ_CHUNK = 10
# A resync pushes in short sync runs, so that its progress shows, and waits at most this long for
# a quota or a retry between them.
RUN_BUDGET_S = 5
MAX_WAIT_S = 30


@dataclass(frozen=True)
class Difference:
    sku: str
    field: str  # ranged | quantity | price
    wheel: Any
    marketplace: Any


def desired(sessions: sessionmaker[Session], channel_id: str, skus: Sequence[str] | None) -> list[Listing]:
    with sessions() as session:
        query = select(Listing).where(Listing.channel_id == channel_id).order_by(Listing.sku)
        if skus:
            query = query.where(Listing.sku.in_(list(skus)))
        return list(session.execute(query).scalars())


def compare(channel: Channel, listings: Sequence[Listing], held: dict[str, MarketplaceListing]) -> list[Difference]:
    """The reconciliation report: every field where the marketplace differs from what Wheel wants."""
    differences = []
    for listing in listings:
        theirs = held.get(listing.sku) or MarketplaceListing(listing.sku)
        if listing.ranged is not None and theirs.ranged is not None and theirs.ranged != listing.ranged:
            differences.append(Difference(listing.sku, "ranged", listing.ranged, theirs.ranged))
        quantity = effective_quantity(listing.ranged, listing.quantity, channel.buffer_stock, channel.max_quantity)
        if quantity is not None and theirs.quantity != quantity:
            differences.append(Difference(listing.sku, "quantity", quantity, theirs.quantity))
        if listing.mrp is not None:
            ours = (listing.mrp, listing.selling_price)
            held_price = (theirs.price.mrp, theirs.price.selling_price) if theirs.price else None
            if held_price != ours:
                differences.append(Difference(listing.sku, "price", f"{ours[0]}/{ours[1]}",
                                              f"{held_price[0]}/{held_price[1]}" if held_price else None))
    return differences


def read(adapter: MarketplaceAdapter, gate: QuotaGate, skus: Sequence[str],
         progress: Callable[[int], None] = lambda n: None) -> dict[str, MarketplaceListing]:
    held: dict[str, MarketplaceListing] = {}
    for start in range(0, len(skus), READ_CHUNK):
        chunk = list(skus[start:start + READ_CHUNK])
        held.update(adapter.read_listings(chunk, gate))
        progress(len(chunk))
    return held


def mark_for_push(sessions: sessionmaker[Session], channel_id: str, differences: Sequence[Difference]) -> int:
    """Make the differing fields due again, so the next sync run pushes the desired values."""
    by_field: dict[str, list[str]] = {}
    for difference in differences:
        by_field.setdefault(difference.field, []).append(difference.sku)
    with sessions.begin() as session:
        for field, skus in by_field.items():
            session.execute(MARK_FOR_PUSH[field], {"c": channel_id, "skus": skus})
    return len({d.sku for d in differences})


def mark_all_for_push(sessions: sessionmaker[Session], channel_id: str, skus: Sequence[str] | None) -> int:
    """Push the whole desired state again (for a marketplace that cannot be read back)."""
    with sessions.begin() as session:
        result = session.execute(
            MARK_ALL_FOR_PUSH,
            {"c": channel_id, "all": not skus, "skus": list(skus or [])},
        )
        return result.rowcount


@dataclass(frozen=True)
class ResyncResult:
    pushed: int  # SKU pushes
    calls: int
    failures: int  # failure events recorded
    blocked: str | None = None  # why the channel cannot push at all (credentials, configuration)


def push_marked(sessions: sessionmaker[Session], channel_id: str, adapter: MarketplaceAdapter, gate: QuotaGate, *,
                worker: str, lease_s: float, retry_delays_s: Sequence[float], request_budget_s: float,
                progress: Callable[[int], None] = lambda pushed: None,
                sleep: Callable[[float], None] = time.sleep) -> ResyncResult:
    """Push what `mark_for_push` or `mark_all_for_push` made due, until nothing is left, through
    the same sync runs (leases, quotas, retries, events) the workers use."""
    pushed = calls = failures = 0
    while True:
        outcome = run_sync(sessions, channel_id, adapters=lambda _: adapter, gate_for=lambda *_: gate, worker=worker,
                           lease_s=lease_s, default_retry_delays_s=retry_delays_s, time_budget_s=RUN_BUDGET_S,
                           settle_s=0, request_budget_s=request_budget_s)
        pushed, calls, failures = pushed + outcome.skus, calls + outcome.calls, failures + len(outcome.alerts)
        if outcome.blocked:
            return ResyncResult(pushed, calls, failures, blocked=outcome.blocked)
        progress(pushed)
        if outcome.retry_in_s is not None:
            sleep(min(outcome.retry_in_s, MAX_WAIT_S))
        elif not outcome.more:
            return ResyncResult(pushed, calls, failures)
