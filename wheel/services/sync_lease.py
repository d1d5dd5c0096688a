"""This worker's lease on the listings a sync run claimed (docs/contracts.md, contract 2).

A request is started only while the lease has time left for it; the quota gate the adapter gets
checks the lease before every request, so no request starts on a lease that ran out.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from wheel.marketplaces.base import QuotaGate, QuotaWait

# Seconds a renewed lease keeps beyond the longest request (clock skew, the renewal's own time).
RENEW_MARGIN_S = 5.0

RENEW = text(
    "UPDATE listings SET lease_until = now() + make_interval(secs => :lease) "
    "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus) AND lease_until > now() "
    "RETURNING sku"
)


class LeaseLost(Exception):
    """Some SKUs of a call are no longer leased to this worker: the call must not start."""


class Lease:
    """This worker's lease on the listings it claimed, renewed before it can run out.

    A request is started only while the lease has at least `request_budget_s` left (the longest
    a request can take); when it has less, the lease of every SKU still held is renewed first.
    A SKU whose lease already ran out may be another worker's now, and is not pushed: a push
    that outlived its lease could land an older value after a newer one (docs/contracts.md,
    contract 2; tests/integration/test_push_races.py).
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
        # The lanes of a run (wheel/services/sync_lanes.py) check and renew it from their threads.
        self._lock = threading.Lock()

    def hold(self, skus: set[str]) -> None:
        self.held |= skus

    def drop(self, skus: set[str]) -> None:
        self.held -= skus

    def ensure(self, skus: set[str]) -> None:
        """Raise LeaseLost unless every one of `skus` stays leased for one more request."""
        with self._lock:
            if time.monotonic() + self.request_budget_s >= self.deadline:
                self.renew()
            lost = skus - self.held
        if lost:
            raise LeaseLost(f"lease lost on {len(lost)} SKUs ({', '.join(sorted(lost)[:5])})")

    def renew(self) -> None:
        started = time.monotonic()
        with self.sessions.begin() as session:
            kept = set(session.execute(
                RENEW,
                {"lease": self.lease_s, "c": self.channel_id, "w": self.worker, "skus": sorted(self.held)},
            ).scalars())
        self.held = kept
        self.deadline = started + self.lease_s


class LeasedGate:
    """The channel's quota gate, checking the lease before each request the adapter makes (every
    request takes a token first, so none can start on a lease that ran out)."""

    def __init__(self, gate: QuotaGate, lease: Lease):
        self.gate, self.lease = gate, lease
        self.skus: set[str] = set()
        # For look-ups (Flipkart's FSNs, Amazon's product types), which change nothing at the
        # marketplace: they need the quota, not the lease, and an adapter may make them from a
        # thread of its own, ahead of the updates (wheel/marketplaces/lookups.py).
        self.reads: QuotaGate = gate

    def acquire(self, operation: str) -> None:
        self.lease.ensure(self.skus)
        self.gate.acquire(operation)
        # The token may have come after an inline wait: check again before the request goes.
        self.lease.ensure(self.skus)

    def throttled(self, retry_after: float | None = None) -> QuotaWait:
        return self.gate.throttled(retry_after)
