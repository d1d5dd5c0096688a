"""What every marketplace adapter offers, and the data it is built from.

An adapter turns desired-state updates into the marketplace's calls. `plan` is pure: it groups
updates into calls within the batch limits and refuses, item by item, values the marketplace
cannot take. `execute` makes one planned call (and any look-ups it needs), taking every request
from the channel's quota through the gate, and returns one verdict per (SKU, field).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from wheel.domain import ORDER_JOBS, ItemResult, ListingUpdate, MarketplaceListing


@dataclass(frozen=True)
class ChannelConfig:
    id: str
    marketplace: str
    base_url: str
    credentials_ref: str
    # Marketplace-specific settings (Amazon: seller_id, lwa_url; ...). Not secrets.
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # Changes whenever the channel row changes, so cached adapters are rebuilt.
    version: str = ""


@dataclass(frozen=True)
class HttpConfig:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)


@dataclass(frozen=True)
class Quota:
    rate_per_s: float
    burst: float


@dataclass(frozen=True)
class Call:
    """One request to the marketplace, as planned: its API operation (the quota's key), the
    updates it carries and which of their fields."""

    operation: str
    updates: tuple[ListingUpdate, ...]
    fields: frozenset[str]
    kind: str = ""  # adapter-private detail (e.g. "feed", "ranging")


@dataclass(frozen=True)
class Submitted:
    """A call the marketplace took to work on later (an Amazon JSON_LISTINGS_FEED): what `execute`
    returns instead of verdicts. The caller records it on the rows it carries, releases the worker,
    and asks `poll` for the verdicts later, so no worker waits minutes on a feed.

    `results`: verdicts known now (SKUs never sent); `sent`: the updates the marketplace holds;
    `state`: what `poll` needs besides them (JSON)."""

    reference: str
    sent: tuple[ListingUpdate, ...]
    results: tuple[ItemResult, ...] = ()
    state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Polled:
    """Where a submission stands. Finished: `results` judge what it carried, and `doubtful` are
    the updates it may or may not have applied (the caller pushes them again)."""

    finished: bool
    status: str
    results: tuple[ItemResult, ...] = ()
    doubtful: tuple[ListingUpdate, ...] = ()
    # Seconds from submission to the end of processing, by the marketplace's own clock when it says
    # (None: it did not; the caller counts from its own submission time).
    processing_s: float | None = None


class QuotaWait(Exception):
    """The channel's quota for an operation is used up; try again in `retry_in_s`."""

    def __init__(self, operation: str, retry_in_s: float):
        super().__init__(f"quota for {operation} used up; next request in {retry_in_s:.2f}s")
        self.operation = operation
        self.retry_in_s = retry_in_s


class QuotaGate(Protocol):
    def acquire(self, operation: str) -> None:
        """Take one request from the channel's quota for `operation`, waiting a moment if one is
        about to be there; raise QuotaWait when the wait would be long."""

    def throttled(self, retry_after: float | None = None) -> QuotaWait:
        """The marketplace answered the last request acquired with 429: empty that operation's
        bucket and return the wait (the caller raises or reschedules with it)."""


@dataclass(frozen=True)
class Workload:
    """What a batch (or the backlog) of a channel's pushes holds: SKUs, and of them those whose
    stock (quantity or ranging) and whose price are due."""

    skus: int
    stock: int
    price: int


@dataclass(frozen=True)
class PushConditions:
    """What the service layer knows of a channel that its adapter does not (the adapters read no
    database): its quotas as in force (documented, times quota_scale, then its overrides), how long
    until the bulk operation's tokens are there (0: there now), and how long this channel's bulk
    submissions have taken to process (None: none observed yet)."""

    quotas: Mapping[str, Quota]
    bulk_token_wait_s: float = 0.0
    bulk_processing_s: float | None = None


@dataclass(frozen=True)
class PathChoice:
    """How a batch goes out (Amazon: one PATCH per SKU and field, or a JSON_LISTINGS_FEED), and
    the two estimates of when it would be done that decided it."""

    path: str  # "patch" or "feed"
    reason: str  # "estimate", or "bulk_threshold" (the channel's option decided)
    skus: int
    patch_calls: int
    patch_rate_per_s: float
    patch_s: float
    feeds: int
    feed_token_wait_s: float
    feed_processing_s: float
    feed_processing_observed: bool

    @property
    def feed_s(self) -> float:
        return self.feed_token_wait_s + self.feed_processing_s

    def describe(self) -> str:
        basis = "observed" if self.feed_processing_observed else "assumed: none observed yet"
        rule = "" if self.reason == "estimate" else f" (set by the channel's {self.reason})"
        return (f"{self.skus} SKUs go by {self.path}{rule}: by PATCH ~{self.patch_s:.0f} s ({self.patch_calls} calls "
                f"at {self.patch_rate_per_s:.2f}/s), by feed ~{self.feed_s:.0f} s (createFeed token in "
                f"{self.feed_token_wait_s:.0f} s + processing {self.feed_processing_s:.0f} s, {basis})")

    def payload(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "skus": self.skus, "patch_calls": self.patch_calls,
                "patch_rate_per_s": round(self.patch_rate_per_s, 4), "patch_s": round(self.patch_s, 1),
                "feeds": self.feeds, "feed_s": round(self.feed_s, 1),
                "feed_token_wait_s": round(self.feed_token_wait_s, 1),
                "feed_processing_s": round(self.feed_processing_s, 1),
                "feed_processing_observed": self.feed_processing_observed}


@dataclass(frozen=True)
class Capabilities:
    # SKUs per call, by API operation.
    max_batch: Mapping[str, int]
    # Documented quotas, by API operation.
    quotas: Mapping[str, Quota]
    # Amazon: the channel's own rule, when set: a JSON_LISTINGS_FEED when at least this many SKUs
    # wait, else PATCHes (None: by the estimates, see `bulk_operation`).
    bulk_threshold: int | None = None
    # The operation of a bulk path the adapter can take instead of one call per SKU (Amazon:
    # createFeed). The service asks `choose` which path each batch takes, with what it knows of the
    # channel (PushConditions), and plans the batch with `bulk` accordingly.
    bulk_operation: str | None = None
    # Whether `read_listings` works (Tata CLiQ publishes no way to read listings back).
    reads_listings: bool = False
    # Listing is making stock available (Amazon, Flipkart): a SKU is listed with its first quantity.
    ranging_needs_quantity: bool = False
    # Each operation has a quota of its own: the calls of a batch go side by side, a lane per
    # operation with this many requests in flight (wheel/services/sync_lanes.py); 0: one call at a
    # time, in the plan's order.
    in_flight: int = 0


class MarketplaceAdapter(Protocol):
    marketplace: str
    capabilities: Capabilities

    def plan(self, updates: Sequence[ListingUpdate], bulk: bool = False) -> tuple[list[Call], list[ItemResult]]:
        """Pure: the calls to make, and the verdicts on what cannot be sent at all. `bulk`: by the
        bulk path (`Capabilities.bulk_operation`; adapters without one ignore it)."""
        ...

    def choose(self, work: Workload, conditions: PushConditions) -> PathChoice:
        """Pure: which path a batch takes, by when each would be done (adapters with a
        `bulk_operation` only)."""
        ...

    def execute(self, call: Call, quota: QuotaGate, *, request_id: str) -> list[ItemResult] | Submitted:
        """Make the call; one ItemResult per (SKU, field) it carried, or Submitted when the
        marketplace judges it later (see `poll`). Raises TransientError, AuthError or
        PermanentError when the call as a whole fails, QuotaWait when out of quota."""
        ...

    def poll(self, submitted: Submitted, quota: QuotaGate) -> Polled:
        """Where a Submitted call stands (adapters whose `execute` never submits need not have it)."""
        ...

    def read_listings(self, skus: Sequence[str], quota: QuotaGate) -> dict[str, MarketplaceListing]:
        """What the marketplace holds for these SKUs (a resync compares it with the desired state)."""
        ...

    def check_credentials(self) -> str:
        """One cheap authenticated call (no listing or order is changed), for `wheelctl doctor`: what
        the marketplace accepted, in a few words. Raises AuthError when it refuses the channel's
        credentials, TransientError when it cannot be reached, ConfigurationError for a bad URL."""
        ...


# -- pulling orders and cancellations ----------------------------------------------------------


@dataclass(frozen=True)
class PullWindow:
    """Pull what was created (or cancelled, or updated) in [start, end)."""

    start: Any  # datetime, timezone-aware
    end: Any


@dataclass
class OrderPage:
    """One page of a pull. `cursor` resumes the pull after this page (None: the pull is complete);
    it is stored with the page's orders, so a crash resumes at the next page."""

    orders: list[Any] = field(default_factory=list)  # wheel.domain.Order
    cancellations: list[Any] = field(default_factory=list)  # wheel.domain.Cancellation
    failures: list[Any] = field(default_factory=list)  # wheel.domain.Unmappable
    requests: list[Any] = field(default_factory=list)  # wheel.domain.CancellationRequest
    # Raw record per order id (JSON-able), kept with the stored order.
    raw: dict[str, Any] = field(default_factory=dict)
    cursor: dict[str, Any] | None = None
    calls: int = 0
    # What the ops team should hear though nothing failed, by kind (say, "large-answer": an
    # answer near its size limit); the pull records each as a warning, once a day per kind.
    warnings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PullCapabilities:
    # The jobs this marketplace runs; Amazon's one query serves both orders and cancellations.
    jobs: tuple[str, ...] = ORDER_JOBS
    # A window may end no later than this long before now (Amazon's 2-minute rule).
    settle_lag_s: float = 0.0
    # Each window starts this long before the last watermark, to catch late-indexed orders.
    overlap_s: float = 600.0
    # Whether the marketplace filters by time at all (Tata CLiQ answers every active order).
    uses_window: bool = True


class OrderSource(Protocol):
    pull_capabilities: PullCapabilities

    def pull(self, job: str, window: PullWindow, cursor: dict[str, Any] | None,
             quota: QuotaGate) -> "Iterator[OrderPage]":
        """The pages of one pull, from `cursor` (None: from the start of the window). Takes each
        request from the quota through the gate; raises QuotaWait, TransientError, AuthError or
        PermanentError like `execute`."""
        ...
