"""Pushing a channel's desired state to its marketplace (docs/contracts.md, contracts 2 and 3).

A sync run claims dirty listings of one channel with a lease (`FOR UPDATE SKIP LOCKED`, so two
workers never push the same SKU), asks the adapter to plan the calls, makes them through the
channel's quota gate, and settles each call's verdicts in its own transaction: it marks the
versions it pushed as settled and logs one outcome event per message and outcome. A newer value
that arrived meanwhile keeps the listing dirty for the next run. Values are read at claim time,
so a push always carries the newest value, never an older one.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Channel, Listing, Submission
from wheel.domain import ItemResult, ListingUpdate, Price
from wheel.events import NewEvent, Recorded, record
from wheel.marketplaces import UnknownMarketplace
from wheel.marketplaces.base import Call, ChannelConfig, MarketplaceAdapter, QuotaGate, QuotaWait, Submitted
from wheel.marketplaces.errors import AuthError, ConfigurationError, MarketplaceError, PermanentError, TransientError
from wheel.services.desired_state import event_parents

log = logging.getLogger("wheel.sync")

# A change waits this long before it is pushed, so that a burst of updates to a SKU goes out as one.
SETTLE_S = 0.3

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


# A channel whose credentials or settings are refused is tried again this often; its alert is
# raised once an hour at most while it stays blocked.
CHANNEL_BLOCKED_RETRY_S = 60.0


# Seconds a renewed lease keeps beyond the longest request (clock skew, the renewal's own time).
RENEW_MARGIN_S = 5.0


class LeaseLost(Exception):
    """Some SKUs of a call are no longer leased to this worker: the call must not start."""


class _Lease:
    """This worker's lease on the listings it claimed, renewed before it can run out.

    A request is started only while the lease has at least `request_budget_s` left (the longest
    a request can take); when it has less, the lease of every SKU still held is renewed first.
    A SKU whose lease already ran out may be another worker's now, and is not pushed (review:
    a push that outlived its lease let an older value land after a newer one).
    """

    def __init__(self, sessions, channel_id: str, worker: str, lease_s: float, request_budget_s: float):
        self.sessions, self.channel_id, self.worker = sessions, channel_id, worker
        # A renewed lease always outlasts one more request, however short the configured lease:
        # a request that outlived it would let another worker push the same SKU meanwhile.
        self.lease_s = max(float(lease_s), float(request_budget_s) + RENEW_MARGIN_S)
        self.request_budget_s = float(request_budget_s)
        # Taken before the claim: the local deadline is never later than the database's.
        self.deadline = time.monotonic() + self.lease_s
        self.held: set[str] = set()

    def hold(self, skus: set[str]) -> None:
        self.held |= skus

    def drop(self, skus: set[str]) -> None:
        self.held -= skus

    def ensure(self, skus: set[str]) -> None:
        """Raise LeaseLost unless every one of `skus` stays leased for one more request."""
        if time.monotonic() + self.request_budget_s >= self.deadline:
            self.renew()
        lost = skus - self.held
        if lost:
            raise LeaseLost(f"lease lost on {len(lost)} SKUs ({', '.join(sorted(lost)[:5])})")

    def renew(self) -> None:
        started = time.monotonic()
        with self.sessions.begin() as session:
            kept = set(session.execute(
                text("UPDATE listings SET lease_until = now() + make_interval(secs => :lease) "
                     "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus) AND lease_until > now() "
                     "RETURNING sku"),
                {"lease": self.lease_s, "c": self.channel_id, "w": self.worker, "skus": sorted(self.held)},
            ).scalars())
        self.held = kept
        self.deadline = started + self.lease_s


class _LeasedGate:
    """The channel's quota gate, checking the lease before each request the adapter makes (every
    request takes a token first, so none can start on a lease that ran out)."""

    def __init__(self, gate: QuotaGate, lease: _Lease):
        self.gate, self.lease = gate, lease
        self.skus: set[str] = set()

    def acquire(self, operation: str) -> None:
        self.lease.ensure(self.skus)
        self.gate.acquire(operation)
        # The token may have come after an inline wait: check again before the request goes.
        self.lease.ensure(self.skus)

    def throttled(self, retry_after: float | None = None) -> QuotaWait:
        return self.gate.throttled(retry_after)


@dataclass(frozen=True)
class Claimed:
    """A claimed listing: the values to push, and the versions they carry."""

    sku: str
    ean: str
    update: ListingUpdate
    versions: dict[str, int]  # field -> version being pushed (only fields that are due)
    ranged: bool | None


@dataclass
class SyncOutcome:
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


AdapterLookup = Callable[[ChannelConfig], MarketplaceAdapter]
GateLookup = Callable[[Channel, MarketplaceAdapter], QuotaGate]


def channel_config(channel: Channel) -> ChannelConfig:
    return ChannelConfig(channel.id, channel.marketplace, channel.base_url, channel.credentials_ref,
                         options=dict(channel.options or {}), version=channel.updated_at.isoformat())


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
    settle_s: float = SETTLE_S,
    request_budget_s: float = 35.0,
    first_poll_s: float = 15.0,
) -> SyncOutcome:
    """Push the channel's dirty listings for up to `time_budget_s`. `request_budget_s` is the
    longest one marketplace request can take (connect + read timeout): a request starts only while
    the lease has at least that long left, renewing it first when it has not."""
    outcome = SyncOutcome(channel_id)
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
        outcome.alerts += _block_channel(sessions, channel, exc, set())
        outcome.retry_in_s, outcome.blocked = CHANNEL_BLOCKED_RETRY_S, str(exc)
        return outcome
    gate = gate_for(channel, adapter)
    started = time.monotonic()
    while time.monotonic() - started < time_budget_s:
        lease = _Lease(sessions, channel.id, worker, lease_s, request_budget_s)
        claimed = _claim(sessions, channel, worker, lease.lease_s, _claim_size(sessions, channel, adapter), settle_s)
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


def _claim_size(sessions, channel: Channel, adapter: MarketplaceAdapter) -> int:
    caps = adapter.capabilities
    if caps.bulk_threshold is not None:
        with sessions() as session:
            waiting = session.scalar(
                select(func.count()).select_from(Listing).where(Listing.channel_id == channel.id, Listing.dirty)
            )
        if waiting >= caps.bulk_threshold:
            return min(waiting, 25_000)
    # Big enough that calls go out full (a batch splits by operation), small enough to push
    # within half a lease.
    biggest = max(caps.max_batch.values(), default=10)
    return max(40, min(biggest * 20, 500))


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


def _push(sessions, channel: Channel, adapter: MarketplaceAdapter, gate: QuotaGate, lease: _Lease,
          claimed: list[Claimed], delays: list[float], outcome: SyncOutcome, first_poll_s: float = 15.0) -> bool:
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
        _settle(sessions, channel, worker, by_sku, [ItemResult(c.sku, f, True) for c in nothing for f in c.versions], {})
        lease.drop({c.sku for c in nothing})
    calls, refused = adapter.plan(updates)
    # Verdicts, the refusals included, settled together when the batch ends: one transaction
    # instead of one a call, and no SKU is released while another of its calls waits (a refused
    # price must not free the SKU whose quantity is still to be sent).
    done: list[ItemResult] = list(refused)
    leased = _LeasedGate(gate, lease)

    def settle_done(unsent: set[str] | frozenset[str] = frozenset()) -> None:
        # A SKU with a call still unsent (or failed) settles nothing now: its fields stay due and go
        # out together next time. Settling the rest would free it without, say, the stock 0 its
        # deranging carries, which nothing would then send (found by the chaos run, tests/chaos/).
        settled = [r for r in done if r.sku not in unsent]
        if settled:
            outcome.alerts.extend(_settle(sessions, channel, worker, by_sku, settled, {}))
        done.clear()

    def stop(remaining: Sequence[Call], retry_in_s: float) -> bool:
        settle_done(_remaining(remaining))
        _release(sessions, channel.id, worker, _remaining(remaining))
        outcome.retry_in_s = retry_in_s if outcome.retry_in_s is None else min(outcome.retry_in_s, retry_in_s)
        return True

    for index, call in enumerate(calls):
        request_id = f"wheel-sync-{channel.id}-{int(time.time() * 1000)}-{index}"
        if channel.shadow:
            results = [ItemResult(u.sku, f, True) for u in call.updates for f in call.fields if f in u.fields]
            outcome.alerts += _settle(sessions, channel, worker, by_sku, results, {"shadow": True, "call": _describe(call)})
            continue
        leased.skus = set(_skus(call))
        try:
            results = adapter.execute(call, leased, request_id=request_id)
        except LeaseLost as lost:
            # The lease could not be renewed (the database was away, or the worker stalled past
            # it): the SKUs may be another worker's now, so no request of this call was started.
            log.warning("channel %s: %s; stopping this run", channel.id, lost)
            return stop(calls[index:], 0.0)
        except QuotaWait as wait:
            return stop(calls[index:], wait.retry_in_s)
        except TransientError as exc:
            if exc.status == 429:
                # The marketplace counted differently: wait on the operation's bucket (emptied for
                # every worker), with or without a Retry-After, and count no attempt.
                return stop(calls[index:], gate.throttled(exc.retry_after).retry_in_s)
            outcome.calls += 1
            settle_done(_remaining(calls[index:]))
            retry = _retry_or_fail(sessions, channel, worker, by_sku, call, exc, delays)
            outcome.alerts += retry.alerts
            # The marketplace is struggling: stop here, and come back after the backoff.
            return stop(calls[index + 1:], retry.retry_in_s if retry.retry_in_s is not None else 0.0)
        except (AuthError, ConfigurationError) as exc:
            # The credentials were refused, or the channel's base URL is no URL: every call of the
            # channel would fail the same way. Nothing is settled as failed; the values wait for
            # the channel to be fixed.
            outcome.calls += 1
            remaining = _remaining(calls[index:])
            settle_done(remaining)
            outcome.alerts += _block_channel(sessions, channel, exc, remaining, worker=worker)
            outcome.retry_in_s, outcome.blocked = CHANNEL_BLOCKED_RETRY_S, str(exc)
            return True
        except PermanentError as exc:
            outcome.calls += 1
            done.extend(ItemResult(u.sku, f, False, exc.code or str(exc.status), str(exc))
                        for u in call.updates for f in call.fields if f in u.fields)
            continue
        outcome.calls += 1
        if isinstance(results, Submitted):
            # The marketplace judges it later: its SKUs pass to the submission (claimed by it, for
            # as long as it is in flight) and a poll task settles them.
            done.extend(results.results)
            _record_submission(sessions, channel, lease, by_sku, results, first_poll_s)
            outcome.submitted.append(results.reference)
            continue
        done.extend(results)
    settle_done()
    return False


def _park(sessions, channel: Channel, worker: str, parked: list[Claimed]) -> None:
    params = {"c": channel.id, "w": worker, "skus": [c.sku for c in parked]}
    with sessions.begin() as session:
        # Only a SKU still without a quantity is parked: one whose first inventory message was
        # applied after the claim stays dirty (released) and is pushed with that quantity.
        done = set(session.execute(
            text("UPDATE listings SET dirty = false, dirty_since = NULL, lease_until = NULL, claimed_by = NULL "
                 "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus) AND quantity IS NULL RETURNING sku"),
            params,
        ).scalars())
        session.execute(
            text("UPDATE listings SET lease_until = NULL, claimed_by = NULL "
                 "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus)"), params)
        parked = [c for c in parked if c.sku in done]
        _log_grouped(session, channel, {c.sku: c for c in parked}, [ItemResult(c.sku, "ranged", True) for c in parked],
                     name_for=lambda op, ok: f"{op}/waiting-for-quantity", level="info",
                     extra={"reason": f"{channel.marketplace} lists a SKU with its stock: it is listed when its "
                                      "first quantity arrives"})


def _skus(call: Call) -> list[str]:
    return [u.sku for u in call.updates]


def _remaining(calls: Sequence[Call]) -> set[str]:
    return {u.sku for call in calls for u in call.updates}


def _describe(call: Call) -> dict[str, Any]:
    return {"operation": call.operation, "fields": sorted(call.fields), "skus": len(call.updates)}


def _release(sessions, channel_id: str, worker: str, skus: set[str]) -> None:
    if not skus:
        return
    with sessions.begin() as session:
        session.execute(
            text("UPDATE listings SET lease_until = NULL, claimed_by = NULL "
                 "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus)"),
            {"c": channel_id, "w": worker, "skus": list(skus)},
        )


def _block_channel(sessions, channel: Channel, exc: Exception, released: set[str], *, worker: str | None = None
                   ) -> list[Recorded]:
    """The channel cannot push at all (credentials refused or missing, a setting wrong): leave
    every dirty listing dirty, release the claimed ones, come back later, and say so once."""
    kind = "auth" if isinstance(exc, AuthError) else "configuration"
    error = str(exc) or type(exc).__name__
    with sessions.begin() as session:
        if released and worker is not None:
            session.execute(
                text("UPDATE listings SET lease_until = NULL, claimed_by = NULL, "
                     "next_attempt_at = now() + make_interval(secs => :wait) "
                     "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus)"),
                {"wait": CHANNEL_BLOCKED_RETRY_S, "c": channel.id, "w": worker, "skus": sorted(released)},
            )
        waiting = session.execute(
            text("UPDATE listings SET next_attempt_at = GREATEST(next_attempt_at, now() + make_interval(secs => :wait)) "
                 "WHERE channel_id = :c AND dirty AND (lease_until IS NULL OR lease_until < now()) RETURNING sku"),
            {"wait": CHANNEL_BLOCKED_RETRY_S, "c": channel.id},
        ).all()
        hour = session.scalar(text("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDDHH24')"))
        fingerprint = hashlib.sha1(error.encode()).hexdigest()[:12]
        recorded = record(session, NewEvent(
            type="system", name="system/channel-blocked", level="error", channel_id=channel.id,
            marketplace=channel.marketplace,
            payload={"error": error, "kind": kind, "waiting": len(waiting), "retry_in_s": CHANNEL_BLOCKED_RETRY_S,
                     "fix": (f"fix the channel's credentials ({channel.credentials_ref})" if kind == "auth"
                             else "fix the channel's settings (wheelctl channels list)")
                            + "; the waiting values go out by themselves within a minute"},
            dedupe_key=f"channel-blocked:{channel.id}:{kind}:{fingerprint}:{hour}",
        ))
    return [recorded] if recorded.created else []


@dataclass
class _Retry:
    retry_in_s: float | None = None
    alerts: list[Recorded] = field(default_factory=list)


def _retry_or_fail(sessions, channel: Channel, worker: str, by_sku: dict[str, Claimed], call: Call,
                   exc: TransientError, delays: list[float]) -> _Retry:
    result = _Retry()
    with sessions.begin() as session:
        rows = _locked(session, channel.id, worker, _skus(call))
        give_up = []
        for row in rows:
            row.attempts += 1
            row.last_error = str(exc)
            if row.attempts > len(delays):
                give_up.append(row.sku)
                continue
            # Up to 20% either way, so that retries of many SKUs do not all come back at once.
            delay = max(delays[row.attempts - 1], exc.retry_after or 0) * random.uniform(0.8, 1.2)
            row.next_attempt_at = func.now() + timedelta(seconds=delay)
            row.lease_until = None
            result.retry_in_s = delay if result.retry_in_s is None else min(result.retry_in_s, delay)
        attempts = max((row.attempts for row in rows), default=0)
    if rows and result.retry_in_s is not None:
        # One warning per call and attempt, under the messages it carries.
        with sessions.begin() as session:
            _log_grouped(session, channel, by_sku, [ItemResult(s, f, False) for s in _skus(call) if s not in give_up
                                                   for f in by_sku[s].versions],
                         name_for=lambda op, ok: f"{op}/retrying", level="warning",
                         extra={"error": str(exc), "attempt": attempts, "retry_in_s": result.retry_in_s})
    if give_up:
        failed = {s: by_sku[s] for s in give_up}
        result.alerts += _settle_failure(
            sessions, channel, worker, list(failed.values()), "system/processing-failed",
            {"error": f"{exc}; gave up after {attempts} attempts", "kind": "transient"},
        )
    return result


def _settle_failure(sessions, channel: Channel, worker: str, claimed: list[Claimed], name: str, extra: dict) -> list[Recorded]:
    """Settle every due field of these listings as failed, with one system event per message."""
    results = [ItemResult(c.sku, f, False, extra.get("kind"), extra.get("error")) for c in claimed for f in c.versions]
    by_sku = {c.sku: c for c in claimed}
    return _settle(sessions, channel, worker, by_sku, results, extra, failure_name=name)


def _locked(session: Session, channel_id: str, worker: str, skus: list[str]) -> list[Listing]:
    """The listings still leased to this worker (a lease that ran out may have passed on)."""
    return list(session.execute(
        select(Listing).where(
            tuple_(Listing.channel_id, Listing.sku).in_([(channel_id, s) for s in skus]),
            Listing.claimed_by == worker,
        ).order_by(Listing.sku).with_for_update()
    ).scalars())


def _operation(field_name: str, ranged: bool | None) -> str:
    if field_name == "ranged":
        return "ranging" if ranged else "deranging"
    return "inventory" if field_name == "quantity" else "pricing"


def _settle(sessions, channel: Channel, worker: str, by_sku: dict[str, Claimed], results: Sequence[ItemResult],
            extra: dict, failure_name: str | None = None) -> list[Recorded]:
    """Mark the pushed versions settled, remember what the marketplace now holds, log outcomes."""
    if not results:
        return []
    with sessions.begin() as session:
        rows = {row.sku: row for row in _locked(session, channel.id, worker, sorted({r.sku for r in results}))}
        kept = []
        for result in results:
            row, claim = rows.get(result.sku), by_sku.get(result.sku)
            if row is None or claim is None:
                continue  # no longer ours: whoever holds it now will settle it
            if result.ok:
                if result.field == "ranged":
                    row.pushed_ranged = claim.update.ranged
                if result.field in ("ranged", "quantity") and claim.update.quantity is not None:
                    row.pushed_quantity = claim.update.quantity
                if result.field == "price" and claim.update.price is not None:
                    row.pushed_mrp, row.pushed_selling_price = claim.update.price.mrp, claim.update.price.selling_price
            else:
                row.last_error = result.message or result.code
            version = claim.versions.get(result.field)
            if version is None:
                continue  # carried along (a quantity with a ranging change), not due itself
            setattr(row, f"{result.field}_settled", max(getattr(row, f"{result.field}_settled"), version))
            if getattr(row, f"{result.field}_version") > version:
                # A newer value arrived while this one was in flight: applying it logged this one
                # `superseded` (desired_state.apply), its one outcome; the newer value goes out next.
                continue
            kept.append(result)
        for row in rows.values():
            row.dirty = (row.ranged_version > row.ranged_settled or row.quantity_version > row.quantity_settled
                         or (row.price_version > row.price_settled and row.mrp is not None))
            row.lease_until, row.claimed_by = None, None
            row.updated_at = func.now()
            if not row.dirty:
                row.dirty_since, row.attempts = None, 0
        session.flush()

        def name_for(op: str, ok: bool) -> str:
            if ok:
                return f"{op}/shadowed" if extra.get("shadow") else f"{op}/succeeded"
            return failure_name or f"{op}/failed"

        return _log_grouped(session, channel, by_sku, kept, name_for=name_for, extra=extra)


def _log_grouped(session: Session, channel: Channel, by_sku: dict[str, Claimed], results: Sequence[ItemResult],
                 *, name_for: Callable[[str, bool], str], extra: dict, level: str | None = None) -> list[Recorded]:
    """One event per (message, operation, outcome), listing its items, under the message's oms event."""
    groups: dict[tuple[int, str, bool], list[dict]] = defaultdict(list)
    for result in results:
        claim = by_sku[result.sku]
        version = claim.versions.get(result.field)
        if version is None:
            continue
        op = _operation(result.field, claim.update.ranged if result.field == "ranged" else claim.ranged)
        groups[(version, op, result.ok)].append(_item(claim, result))
    parents = event_parents(session, [version for version, _, _ in groups])
    recorded = []
    for (version, op, ok), items in groups.items():
        name = name_for(op, ok)
        event_level = level or ("info" if ok else "error")
        event_type = "system" if name.startswith("system/") else "domain"
        recorded.append(record(session, NewEvent(
            type=event_type, name=name, level=event_level, parent_id=parents.get(version),
            channel_id=channel.id, marketplace=channel.marketplace, inbox_id=version,
            payload={**{k: v for k, v in extra.items() if k != "shadow"}, "items": items},
        )))
    return [r for r in recorded if r.event.level == "error"]


def _item(claim: Claimed, result: ItemResult) -> dict[str, Any]:
    item: dict[str, Any] = {"sku": claim.sku, "ean": claim.ean}
    update = claim.update
    if result.field == "quantity":
        item["quantity"] = update.quantity
    if result.field == "price" and update.price is not None:
        item.update(update.price.as_dict())
    if not result.ok:
        item.update({k: v for k, v in (("code", result.code), ("error", result.message)) if v})
    return item


# -- submissions in flight (Amazon feeds) ---------------------------------------------------------

# A submission's listings stay claimed this long without a poll; each poll renews it. If every
# poll stops (the worker fleet is down for a day), the SKUs are claimed again and pushed anew.
SUBMISSION_LEASE_S = 24 * 3600


def _record_submission(sessions, channel: Channel, lease: _Lease, by_sku: dict[str, Claimed], submitted: Submitted,
                       first_poll_s: float) -> None:
    """Hand the submitted SKUs from this worker to the submission, in one transaction: the rows
    say which feed carries them (claimed_by), and no one claims them until it is settled."""
    marker = f"{channel.marketplace}-feed:{submitted.reference}"
    skus = sorted({u.sku for u in submitted.sent})
    items = [_claim_json(by_sku[sku]) for sku in skus if sku in by_sku]
    with sessions.begin() as session:
        session.execute(
            text("UPDATE listings SET claimed_by = :m, lease_until = now() + make_interval(secs => :lease) "
                 "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus)"),
            {"m": marker, "lease": SUBMISSION_LEASE_S, "c": channel.id, "w": lease.worker, "skus": skus},
        )
        session.add(Submission(channel_id=channel.id, reference=submitted.reference, worker=marker, items=items,
                               state=dict(submitted.state),
                               next_poll_at=func.now() + timedelta(seconds=first_poll_s)))
        record(session, NewEvent(
            type="domain", name="feed/submitted", level="info", channel_id=channel.id, marketplace=channel.marketplace,
            payload={"feed_id": submitted.reference, "skus": len(skus), "first_poll_in_s": first_poll_s},
            dedupe_key=f"submission:{channel.id}:{submitted.reference}:submitted",
        ))
    lease.drop(set(skus))


def _claim_json(claim: Claimed) -> dict[str, Any]:
    update = claim.update
    return {"sku": claim.sku, "ean": claim.ean, "versions": claim.versions, "ranged": claim.ranged,
            "update": {"ranged": update.ranged, "quantity": update.quantity, "listed": update.listed,
                       "mrp": None if update.price is None else str(update.price.mrp),
                       "selling_price": None if update.price is None else str(update.price.selling_price)}}


def _claim_from_json(item: dict[str, Any]) -> Claimed:
    values = item["update"]
    price = (Price(Decimal(values["mrp"]), Decimal(values["selling_price"]))
             if values.get("mrp") is not None else None)
    update = ListingUpdate(sku=item["sku"], ean=item["ean"], ranged=values.get("ranged"),
                           quantity=values.get("quantity"), price=price, listed=values.get("listed", True))
    return Claimed(item["sku"], item["ean"], update, {k: int(v) for k, v in item["versions"].items()}, item.get("ranged"))


@dataclass
class PollOutcome:
    channel_id: str
    reference: str
    marketplace: str | None = None
    status: str = "skipped"  # skipped | waiting | finished
    poll_in_s: float | None = None
    alerts: list[Recorded] = field(default_factory=list)


def poll_submission(
    sessions: sessionmaker[Session],
    channel_id: str,
    reference: str,
    *,
    adapters: AdapterLookup,
    gate_for: GateLookup,
    default_retry_delays_s: Sequence[float],
    slow_after_s: float = 900.0,
    first_poll_s: float = 15.0,
    max_poll_s: float = 120.0,
) -> PollOutcome:
    """Ask the marketplace where a submission stands; settle its verdicts once it has ended.

    Runs as its own task, again and again (by default 15 s doubling to 2 minutes), so no worker waits on a
    feed. A failure to poll (throttled, a timeout, the credentials) is no verdict: it polls again.
    """
    outcome = PollOutcome(channel_id, reference)
    with sessions() as session:
        row = session.execute(select(Submission).where(Submission.channel_id == channel_id,
                                                       Submission.reference == reference)).scalar_one_or_none()
        channel = session.get(Channel, channel_id)
        if row is None or row.status != "in_progress" or channel is None:
            return outcome
        session.expunge_all()
    outcome.marketplace = channel.marketplace
    claims = [_claim_from_json(item) for item in row.items]
    by_sku = {c.sku: c for c in claims}
    submitted = Submitted(reference=reference, sent=tuple(c.update for c in claims), state=row.state or {})
    pause = min(max_poll_s, first_poll_s * 2 ** min(row.polls, 8))
    try:
        adapter = adapters(channel_config(channel))
        polled = adapter.poll(submitted, gate_for(channel, adapter))
    except QuotaWait as wait:
        return _poll_later(sessions, row, outcome, max(pause, wait.retry_in_s), None)
    except (MarketplaceError, UnknownMarketplace) as exc:
        # Not a verdict on the feed: Amazon still holds it. Poll again; say so if it goes on.
        return _poll_later(sessions, row, outcome, pause, str(exc) or type(exc).__name__)
    if not polled.finished:
        outcome = _poll_later(sessions, row, outcome, pause, None)
        waiting_s = (datetime.now(timezone.utc) - row.submitted_at).total_seconds()
        if not row.warned and waiting_s > slow_after_s:
            with sessions.begin() as session:
                session.execute(text("UPDATE submissions SET warned = true WHERE id = :id"), {"id": row.id})
                record(session, NewEvent(
                    type="domain", name="feed/slow", level="warning", channel_id=channel.id,
                    marketplace=channel.marketplace,
                    payload={"feed_id": reference, "status": polled.status, "skus": len(claims),
                             "waiting_s": round(waiting_s),
                             "note": "still processing at Amazon; polled until it ends, never submitted twice"},
                    dedupe_key=f"submission:{channel.id}:{reference}:slow",
                ))
        return outcome
    outcome.status = "finished"
    outcome.alerts += _settle(sessions, channel, row.worker, by_sku, list(polled.results),
                              {"feed_id": reference, "feed_status": polled.status})
    if polled.doubtful:
        doubt = Call("createFeed", tuple(polled.doubtful), frozenset().union(*(u.fields for u in polled.doubtful)),
                     kind="feed")
        retry = _retry_or_fail(sessions, channel, row.worker, by_sku, doubt, TransientError(
            f"Amazon feed {reference} ended {polled.status} without saying whether these were applied"),
            list(channel.retry_delays_s or default_retry_delays_s))
        outcome.alerts += retry.alerts
    with sessions.begin() as session:
        # Whatever the verdicts left (say, a SKU the report forgot) is released, not held for a day.
        session.execute(text("UPDATE listings SET claimed_by = NULL, lease_until = NULL "
                             "WHERE channel_id = :c AND claimed_by = :m"), {"c": channel.id, "m": row.worker})
        session.execute(text("UPDATE submissions SET status = 'finished', outcome = :o, finished_at = now(), "
                             "polls = polls + 1 WHERE id = :id"), {"o": polled.status, "id": row.id})
    return outcome


def _poll_later(sessions, row: Submission, outcome: PollOutcome, wait_s: float, error: str | None) -> PollOutcome:
    with sessions.begin() as session:
        session.execute(
            text("UPDATE submissions SET polls = polls + 1, last_error = :e, "
                 "next_poll_at = now() + make_interval(secs => :wait) WHERE id = :id"),
            {"e": error, "wait": wait_s, "id": row.id})
        session.execute(
            text("UPDATE listings SET lease_until = now() + make_interval(secs => :lease) "
                 "WHERE channel_id = :c AND claimed_by = :m"),
            {"lease": SUBMISSION_LEASE_S, "c": row.channel_id, "m": row.worker})
    outcome.status, outcome.poll_in_s = "waiting", wait_s
    if error:
        log.warning("feed %s of %s: polling failed (%s); polling again in %.0fs", row.reference, row.channel_id,
                    error, wait_s)
    return outcome


def stale_submissions(sessions, *, deadline_s: float) -> list[tuple[str, str, str]]:
    """(channel, marketplace, reference) of submissions whose poll is overdue (its task was lost)."""
    with sessions.begin() as session:
        rows = session.execute(text(
            "UPDATE submissions s SET next_poll_at = now() + make_interval(secs => :deadline) FROM channels c "
            "WHERE c.id = s.channel_id AND s.status = 'in_progress' "
            "AND s.next_poll_at < now() - make_interval(secs => :deadline) "
            "RETURNING s.channel_id, c.marketplace, s.reference"), {"deadline": deadline_s}).all()
    return [(r.channel_id, r.marketplace, r.reference) for r in rows]
