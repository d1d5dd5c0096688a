"""Pushing a channel's desired state to its marketplace (docs/contracts.md, contracts 2 and 3).

A sync run claims dirty listings of one channel with a lease (`FOR UPDATE SKIP LOCKED`, so two
workers never push the same SKU), asks the adapter to plan the calls, makes them through the
channel's quota gate, and settles each call's verdicts in its own transaction: it marks the
versions it pushed as settled and logs one outcome event per message and outcome. A newer value
that arrived meanwhile keeps the listing dirty for the next run. Values are read at claim time,
so a push always carries the newest value, never an older one.
"""

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Channel, Listing
from wheel.domain import ItemResult, ListingUpdate, Price
from wheel.events import NewEvent, Recorded, record
from wheel.marketplaces import UnknownMarketplace
from wheel.marketplaces.base import (
    Call,
    MarketplaceAdapter,
    PathChoice,
    PushConditions,
    QuotaGate,
    QuotaWait,
    Submitted,
    Workload,
)
from wheel.marketplaces.errors import AuthError, ConfigurationError, MarketplaceError, PermanentError, TransientError
from wheel.quota import effective_quotas
from wheel.services.channel_blocking import CHANNEL_BLOCKED_RETRY_S, block_channel
from wheel.services.channels import AdapterLookup, GateLookup, channel_config
from wheel.services.submissions import processing_estimate, record_submission
from wheel.services.sync_lanes import Attempt, make_calls
from wheel.services.sync_lease import Lease, LeasedGate, LeaseLost
from wheel.services.sync_settle import Claimed, log_grouped, retry_or_fail, settle, skus_of

log = logging.getLogger("wheel.sync")

# The coalescing window: a change waits this long before it is pushed (and a channel's sync task
# is sent this long after its first update), so that a burst of updates goes out as one run.
COALESCE_S = 0.3

CLAIM = text(
    """
    UPDATE listings SET lease_until = now() + make_interval(secs => :lease), claimed_by = :worker
     WHERE (channel_id, sku) IN (
           SELECT channel_id, sku FROM listings
            WHERE channel_id = :channel AND dirty AND next_attempt_at <= now()
              AND dirty_since <= now() - make_interval(secs => :settle)
              AND (lease_until IS NULL OR lease_until < now())
            ORDER BY dirty_since, sku
            LIMIT :limit
              FOR UPDATE SKIP LOCKED)
    RETURNING *
    """
)
# A SKU ranged before any quantity is known, on a marketplace that lists a SKU with its stock:
# parked (not dirty) until its first quantity arrives.
PARK = text(
    "UPDATE listings SET dirty = false, dirty_since = NULL, lease_until = NULL, claimed_by = NULL "
    "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus) AND quantity IS NULL RETURNING sku"
)
# What the next claim would take (the rows CLAIM would pick, up to :limit): SKUs, and of them those
# whose stock and whose price are due. For the choice between one call per SKU and the bulk path.
BACKLOG = text(
    """
    SELECT count(*) AS skus,
           count(*) FILTER (WHERE ranged_version > ranged_settled OR quantity_version > quantity_settled) AS stock,
           count(*) FILTER (WHERE price_version > price_settled AND mrp IS NOT NULL) AS price
      FROM (SELECT ranged_version, ranged_settled, quantity_version, quantity_settled, price_version,
                   price_settled, mrp
              FROM listings
             WHERE channel_id = :channel AND dirty AND next_attempt_at <= now()
               AND (lease_until IS NULL OR lease_until < now())
             ORDER BY dirty_since, sku
             LIMIT :limit) waiting
    """
)
RELEASE = text(
    "UPDATE listings SET lease_until = NULL, claimed_by = NULL "
    "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus)"
)

@dataclass
class SyncResult:
    channel_id: str
    marketplace: str | None = None
    skus: int = 0
    calls: int = 0
    more: bool = False
    retry_in_s: float | None = None
    alerts: list[Recorded] = field(default_factory=list)
    skipped: str | None = None
    # Why the channel cannot push at all (credentials, settings): its values wait.
    blocked: str | None = None
    # Submissions made (Amazon feed ids): each needs its poll task.
    submitted: list[str] = field(default_factory=list)

def effective_quantity(ranged: bool | None, quantity: int | None, buffer_stock: int, cap: int | None) -> int | None:
    """What the marketplace should show: 0 while deranged; buffer stock held back; capped."""
    if ranged is False:
        return 0
    if quantity is None:
        return None
    shown = max(0, quantity - buffer_stock)
    return min(shown, cap) if cap is not None else shown


def run_sync(
    sessions: sessionmaker[Session],
    channel_id: str,
    *,
    adapters: AdapterLookup,
    gate_for: GateLookup,
    worker: str,
    lease_s: int,
    default_retry_delays_s: Sequence[float],
    time_budget_s: float = 20.0,
    settle_s: float = COALESCE_S,
    request_budget_s: float = 35.0,
    first_poll_s: float = 15.0,
) -> SyncResult:
    """Push the channel's dirty listings for up to `time_budget_s`. `request_budget_s` is the
    longest one marketplace request can take (connect + read timeout): a request starts only while
    the lease has at least that long left, renewing it first when it has not."""
    outcome = SyncResult(channel_id)
    with sessions() as session:
        channel = session.get(Channel, channel_id)
        if channel is None or not channel.enabled:
            outcome.skipped = "no such channel" if channel is None else "channel disabled"
            return outcome
        session.expunge(channel)
    outcome.marketplace = channel.marketplace
    delays = list(channel.retry_delays_s or default_retry_delays_s)
    try:
        adapter = adapters(channel_config(channel))
    except (MarketplaceError, UnknownMarketplace) as exc:
        # Nothing can be pushed (no credentials, a setting missing). The values are not wrong:
        # they wait, dirty, with one alert, and go out by themselves once the channel is fixed.
        outcome.alerts += block_channel(sessions, channel, exc, set())
        outcome.retry_in_s, outcome.blocked = CHANNEL_BLOCKED_RETRY_S, str(exc)
        return outcome
    gate = gate_for(channel, adapter)
    started = time.monotonic()
    while time.monotonic() - started < time_budget_s:
        lease = Lease(sessions, channel.id, worker, lease_s, request_budget_s)
        claimed = _claim(sessions, channel, worker, lease.lease_s, _claim_size(sessions, channel, adapter, gate),
                         settle_s)
        if not claimed:
            break
        outcome.skus += len(claimed)
        lease.hold({c.sku for c in claimed})
        stop = _push(sessions, channel, adapter, gate, lease, claimed, delays, outcome, first_poll_s)
        if stop:
            break
    if outcome.retry_in_s is None and _dirty_ready(sessions, channel_id):
        # More is waiting: come back once the newest of it has settled.
        outcome.more, outcome.retry_in_s = True, settle_s
    return outcome


def _claim_size(sessions, channel: Channel, adapter: MarketplaceAdapter, gate: QuotaGate) -> int:
    caps = adapter.capabilities
    # Big enough that calls go out full (a batch splits by operation) and that a batch's end, where
    # its lanes and its look-ups ahead run dry, comes seldom (Flipkart: 50 calls of 10); small
    # enough to push within half a lease.
    biggest = max(caps.max_batch.values(), default=10)
    usual = max(40, min(biggest * 50, 500))
    if caps.bulk_operation is not None:
        # The bulk path (an Amazon feed) takes up to its batch limit at once: claim that much when
        # it would have the backlog done before the calls one by one would (else a batch of the
        # usual size would never be worth a feed).
        most = caps.max_batch.get(caps.bulk_operation, usual)
        with sessions() as session:
            row = session.execute(BACKLOG, {"channel": channel.id, "limit": most}).one()
        work = Workload(skus=row.skus, stock=row.stock, price=row.price)
        if work.skus > usual and _choose(sessions, channel, adapter, gate, work).path == "feed":
            return most
    return usual


def _conditions(sessions, channel: Channel, adapter: MarketplaceAdapter, gate: QuotaGate,
                work: Workload) -> PushConditions:
    """What the adapter's choice needs to know of the channel: its quotas as in force, the wait for
    the bulk operation's tokens (one per full bulk call), and its bulk submissions' observed time."""
    caps = adapter.capabilities
    quotas = effective_quotas(caps.quotas, channel.quota_scale, channel.quotas)
    bulk_wait_s = 0.0
    per_call = caps.max_batch.get(caps.bulk_operation or "", 0)
    wait_s = getattr(gate, "wait_s", None)  # the Redis gate; test doubles may have no buckets
    if wait_s is not None and caps.bulk_operation and per_call:
        bulk_wait_s = wait_s(caps.bulk_operation, max(1, math.ceil((work.stock + work.price) / per_call)))
    return PushConditions(quotas=quotas, bulk_token_wait_s=bulk_wait_s,
                          bulk_processing_s=processing_estimate(sessions, channel.id))


def _choose(sessions, channel: Channel, adapter: MarketplaceAdapter, gate: QuotaGate, work: Workload) -> PathChoice:
    return adapter.choose(work, _conditions(sessions, channel, adapter, gate, work))


def _record_choice(sessions, channel: Channel, choice: PathChoice) -> None:
    """Say which path a batch takes and why: in the log, and as an event (`push/path-chosen`) when
    the feed was in the running (chosen, or within twice the PATCHes' time). A batch of a few SKUs,
    PATCHed in seconds against a feed's minutes, is every batch of a normal day: no event for it."""
    contended = choice.path == "feed" or choice.feed_s <= 2 * choice.patch_s
    log.log(logging.INFO if contended else logging.DEBUG, "channel %s: %s", channel.id, choice.describe())
    if not contended:
        return
    with sessions.begin() as session:
        # The run's, not a message's: a system event, with no parent.
        record(session, NewEvent(type="system", name="push/path-chosen", level="info", channel_id=channel.id,
                                 marketplace=channel.marketplace, payload=choice.payload()))


def _dirty_ready(sessions, channel_id: str) -> bool:
    with sessions() as session:
        return bool(session.scalar(
            select(func.count()).select_from(Listing).where(
                Listing.channel_id == channel_id, Listing.dirty, Listing.next_attempt_at <= func.now(),
                (Listing.lease_until.is_(None)) | (Listing.lease_until < func.now()),
            ).limit(1)
        ))


def _claim(sessions, channel: Channel, worker: str, lease_s: int, limit: int, settle_s: float) -> list[Claimed]:
    with sessions.begin() as session:
        rows = session.execute(CLAIM, {"channel": channel.id, "worker": worker, "lease": lease_s, "limit": limit,
                                       "settle": settle_s}).all()
    claimed = []
    # RETURNING keeps no order: push the longest-waiting first, in SKU order.
    for row in sorted(rows, key=lambda r: (r.dirty_since, r.sku)):
        due = {}
        if row.ranged_version > row.ranged_settled:
            due["ranged"] = row.ranged_version
        if row.quantity_version > row.quantity_settled:
            due["quantity"] = row.quantity_version
        if row.price_version > row.price_settled and row.mrp is not None:
            due["price"] = row.price_version
        quantity = None
        if "ranged" in due or "quantity" in due:
            # A ranging change moves the effective quantity too: it always travels with it.
            quantity = effective_quantity(row.ranged, row.quantity, channel.buffer_stock, channel.max_quantity)
        update = ListingUpdate(
            sku=row.sku,
            ean=row.ean,
            ranged=row.ranged if "ranged" in due else None,
            quantity=quantity,
            price=Price(row.mrp, row.selling_price) if "price" in due else None,
            listed=row.ranged is not False,
        )
        claimed.append(Claimed(row.sku, row.ean, update, due, row.ranged))
    return claimed


def _push(sessions, channel: Channel, adapter: MarketplaceAdapter, gate: QuotaGate, lease: Lease,
          claimed: list[Claimed], delays: list[float], outcome: SyncResult, first_poll_s: float = 15.0) -> bool:
    """Plan and make the calls for the claimed listings. True when the run should stop."""
    worker = lease.worker
    if adapter.capabilities.ranging_needs_quantity:
        # Listing here means making stock available: a SKU ranged before any quantity is known is
        # parked, not dirty, until its first inventory message makes it due again with a quantity.
        parked = [c for c in claimed if c.update.quantity is None and c.update.ranged]
        if parked:
            _park(sessions, channel, worker, parked)
            lease.drop({c.sku for c in parked})
            claimed = [c for c in claimed if c not in parked]
    by_sku = {c.sku: c for c in claimed}
    updates = [c.update for c in claimed if c.update.fields]
    # Listings with nothing to send (say, ranged on a marketplace before any quantity is known).
    nothing = [c for c in claimed if not c.update.fields]
    if nothing:
        settle(sessions, channel, worker, by_sku, [ItemResult(c.sku, f, True) for c in nothing for f in c.versions], {})
        lease.drop({c.sku for c in nothing})
    if adapter.capabilities.bulk_operation is not None and updates:
        # One call per SKU, or the bulk path: by which has this batch done first.
        work = Workload(skus=len(updates), stock=sum(1 for u in updates if u.ranged is not None or u.quantity is not None),
                        price=sum(1 for u in updates if u.price is not None))
        choice = _choose(sessions, channel, adapter, gate, work)
        _record_choice(sessions, channel, choice)
        calls, refused = adapter.plan(updates, bulk=choice.path == "feed")
    else:
        calls, refused = adapter.plan(updates)
    # Verdicts, the refusals included, settled together when the batch ends: one transaction
    # instead of one a call, and no SKU is released while another of its calls waits (a refused
    # price must not free the SKU whose quantity is still to be sent).
    done: list[ItemResult] = list(refused)

    def settle_done(unsent: set[str] | frozenset[str] = frozenset()) -> None:
        # A SKU with a call still unsent (or failed) settles nothing now: its fields stay due and go
        # out together next time. Settling the rest would free it without, say, the stock 0 its
        # deranging carries, which nothing would then send (found by the chaos run, tests/chaos/).
        settled = [r for r in done if r.sku not in unsent]
        if settled:
            outcome.alerts.extend(settle(sessions, channel, worker, by_sku, settled, {}))
        done.clear()

    if channel.shadow:
        for call in calls:
            results = [ItemResult(u.sku, f, True) for u in call.updates for f in call.fields if f in u.fields]
            outcome.alerts += settle(sessions, channel, worker, by_sku, results, {"shadow": True, "call": _describe(call)})
        settle_done()
        return False
    stamp = int(time.time() * 1000)

    def attempt(index: int, call: Call) -> Attempt:
        # Each lane its own leased gate: it checks the lease on the SKUs of the lane's call.
        leased = LeasedGate(gate, lease)
        leased.skus = set(skus_of(call))
        try:
            return Attempt(index, call, results=adapter.execute(call, leased, request_id=f"wheel-sync-{channel.id}-{stamp}-{index}"))
        except TransientError as exc:
            if exc.status == 429:
                # The marketplace counted differently: wait on the operation's bucket (emptied for
                # every worker), with or without a Retry-After, and count no attempt. Taken here,
                # in the thread that made the request: the gate knows its operation per thread.
                return Attempt(index, call, error=gate.throttled(exc.retry_after))
            return Attempt(index, call, error=exc)
        except Exception as exc:  # noqa: BLE001 - judged below, in the run's own thread
            return Attempt(index, call, error=exc)

    made = make_calls(calls, attempt, in_flight=adapter.capabilities.in_flight)
    unexpected = next((a.error for a in made if not isinstance(a.error, (type(None), *HANDLED))), None)
    if unexpected is not None:
        raise unexpected
    for made_call in made:
        if made_call.error is None:
            outcome.calls += 1
            if isinstance(made_call.results, Submitted):
                # The marketplace judges it later: its SKUs pass to the submission (claimed by it,
                # for as long as it is in flight) and a poll task settles them.
                done.extend(made_call.results.results)
                record_submission(sessions, channel, lease, by_sku, made_call.results, first_poll_s)
                outcome.submitted.append(made_call.results.reference)
            else:
                done.extend(made_call.results)
        elif made_call.refused:
            outcome.calls += 1
            done.extend(ItemResult(u.sku, f, False, made_call.error.code or str(made_call.error.status),
                                   str(made_call.error))
                        for u in made_call.call.updates for f in made_call.call.fields if f in u.fields)
    stopped = [a for a in made if a.stops]
    if not stopped:
        settle_done()
        return False
    return _stopped(sessions, channel, worker, by_sku, calls, made, stopped, delays, outcome, settle_done)


# What a call may raise that the run knows how to handle; anything else is a bug, raised to the task.
HANDLED = (LeaseLost, QuotaWait, TransientError, AuthError, ConfigurationError, PermanentError)


def _stopped(sessions, channel: Channel, worker: str, by_sku: dict[str, Claimed], calls: Sequence[Call],
             made: list[Attempt], stopped: list[Attempt], delays: list[float], outcome: SyncResult,
             settle_done) -> bool:
    """The run stops: a call (in series, the last one made; side by side, one per lane at most)
    could not go or failed. What it and the calls not made carried stays due and is released for
    the next run; a transient failure counts an attempt on its SKUs; refused credentials block the
    channel with every value still due waiting."""
    attempted = {a.index for a in made}
    unsent = [c for i, c in enumerate(calls) if i not in attempted]
    failed: list[Attempt] = []
    blocking: Attempt | None = None
    waits: list[float] = []
    for stop in stopped:
        error = stop.error
        if isinstance(error, LeaseLost):
            # The lease could not be renewed (the database was away, or the worker stalled past
            # it): the SKUs may be another worker's now, so no request of this call was started.
            log.warning("channel %s: %s; stopping this run", channel.id, error)
            unsent.append(stop.call)
            waits.append(0.0)
        elif isinstance(error, QuotaWait):
            unsent.append(stop.call)
            waits.append(error.retry_in_s)
        elif isinstance(error, (AuthError, ConfigurationError)):
            unsent.append(stop.call)
            blocking = blocking or stop
        else:
            failed.append(stop)
    settle_done(_remaining(unsent) | _remaining([f.call for f in failed]))
    for failure in failed:
        # The marketplace is struggling: stop here, and come back after the backoff.
        outcome.calls += 1
        retry = retry_or_fail(sessions, channel, worker, by_sku, failure.call, failure.error, delays)
        outcome.alerts += retry.alerts
        waits.append(retry.retry_in_s if retry.retry_in_s is not None else 0.0)
    if blocking is not None:
        # The credentials were refused, or the channel's base URL is no URL: every call of the
        # channel would fail the same way. Nothing is settled as failed; the values wait for the
        # channel to be fixed.
        outcome.calls += 1
        outcome.alerts += block_channel(sessions, channel, blocking.error, _remaining(unsent), worker=worker)
        outcome.retry_in_s, outcome.blocked = CHANNEL_BLOCKED_RETRY_S, str(blocking.error)
        return True
    _release(sessions, channel.id, worker, _remaining(unsent))
    retry_in_s = min(waits)
    outcome.retry_in_s = retry_in_s if outcome.retry_in_s is None else min(outcome.retry_in_s, retry_in_s)
    return True


def _park(sessions, channel: Channel, worker: str, parked: list[Claimed]) -> None:
    params = {"c": channel.id, "w": worker, "skus": [c.sku for c in parked]}
    with sessions.begin() as session:
        # Only a SKU still without a quantity is parked: one whose first inventory message was
        # applied after the claim stays dirty (released) and is pushed with that quantity.
        done = set(session.execute(PARK, params).scalars())
        session.execute(RELEASE, params)
        parked = [c for c in parked if c.sku in done]
        log_grouped(session, channel, {c.sku: c for c in parked}, [ItemResult(c.sku, "ranged", True) for c in parked],
                     name_for=lambda op, ok: f"{op}/waiting-for-quantity", level="info",
                     extra={"reason": f"{channel.marketplace} lists a SKU with its stock: it is listed when its "
                                      "first quantity arrives"})


def _remaining(calls: Sequence[Call]) -> set[str]:
    return {u.sku for call in calls for u in call.updates}


def _describe(call: Call) -> dict[str, Any]:
    return {"operation": call.operation, "fields": sorted(call.fields), "skus": len(call.updates)}


def _release(sessions, channel_id: str, worker: str, skus: set[str]) -> None:
    if not skus:
        return
    with sessions.begin() as session:
        session.execute(RELEASE, {"c": channel_id, "w": worker, "skus": list(skus)})

