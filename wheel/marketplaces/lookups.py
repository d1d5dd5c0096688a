"""What a push looks up on a marketplace before it can send an update (Flipkart's FSN, location
ids and listing status; Amazon's product type): the cache an adapter is given, and the look-ahead
that makes the look-ups of a batch in a thread of their own, ahead of the updates.

Adapters do no database I/O: the workers give them a `LookupCache` (wheel.services.lookup_cache,
over Postgres, shared by every worker and kept across runs); an adapter built without one keeps
its look-ups in memory, for its own process (`MemoryLookupCache`).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from wheel.marketplaces.base import QuotaGate
from wheel.marketplaces.errors import TransientError

# Look-ups are kept this long when nothing says otherwise (Settings.lookup_ttl_s for the workers).
DEFAULT_TTL_S = 900.0


class LookupCache(Protocol):
    """Per (channel, kind, SKU), a JSON value that expires."""

    def get_many(self, channel_id: str, kind: str, skus: Sequence[str]) -> dict[str, Any]:
        """The values of `skus` not yet expired (the others are absent)."""
        ...

    def put_many(self, channel_id: str, kind: str, values: Mapping[str, Any]) -> None:
        """Keep the values, each until the cache's time to live has passed."""
        ...

    def invalidate(self, channel_id: str, kind: str, skus: Iterable[str]) -> None:
        """Drop them: the next push looks them up afresh."""
        ...


class MemoryLookupCache:
    """A LookupCache for one process (an adapter built with no other, as in unit tests)."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S):
        self.ttl_s = ttl_s
        self._values: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get_many(self, channel_id: str, kind: str, skus: Sequence[str]) -> dict[str, Any]:
        now = time.monotonic()
        found = {}
        with self._lock:
            for sku in skus:
                until, value = self._values.get((channel_id, kind, sku), (0.0, None))
                if until > now:
                    found[sku] = value
        return found

    def put_many(self, channel_id: str, kind: str, values: Mapping[str, Any]) -> None:
        until = time.monotonic() + self.ttl_s
        with self._lock:
            for sku, value in values.items():
                self._values[(channel_id, kind, sku)] = (until, value)

    def invalidate(self, channel_id: str, kind: str, skus: Iterable[str]) -> None:
        with self._lock:
            for sku in skus:
                self._values.pop((channel_id, kind, sku), None)


class LookAhead:
    """The look-ups of one batch, chunk by chunk, in order, in the adapter's look-up threads: the
    updates go out while the next chunks are looked up (on their own quota bucket), and a call
    waits only for the chunks that hold its SKUs.

    `fetch(chunk)` returns what it found for the chunk's SKUs; what it raises (QuotaWait, an
    AuthError...) is raised to the call that waits for that chunk, as if looked up in series.
    """

    def __init__(self, executor: ThreadPoolExecutor | None = None,
                 fetch: Callable[[list[str]], dict[str, Any]] | None = None, chunks: Sequence[list[str]] = ()):
        self._futures: dict[str, Future] = {}
        # The calls of a batch may wait from several threads (one lane per operation, run_sync).
        self._lock = threading.Lock()
        for chunk in chunks:
            future = executor.submit(fetch, list(chunk))
            for sku in chunk:
                self._futures[sku] = future

    def wait(self, skus: Iterable[str]) -> dict[str, Any]:
        """What the chunks holding `skus` found (raising what a chunk raised), for those SKUs."""
        with self._lock:
            futures = {s: self._futures[s] for s in dict.fromkeys(skus) if s in self._futures}
        found: dict[str, Any] = {}
        for future in dict.fromkeys(futures.values()):
            found.update(future.result())
        return {s: found[s] for s in futures if s in found}

    def drop(self, skus: Iterable[str]) -> None:
        """Forget what was (or is being) looked up for `skus`: a call that needs them again looks
        them up afresh."""
        with self._lock:
            for sku in skus:
                self._futures.pop(sku, None)

    def cancel(self) -> None:
        """Drop the chunks not started (the batch stopped early: its SKUs are looked up next time)."""
        with self._lock:
            futures = set(self._futures.values())
        for future in futures:
            future.cancel()


@dataclass(frozen=True)
class Missing:
    """The marketplace holds nothing for the SKU (why: the adapter's own words or code)."""

    why: Any


# fetch(chunk, gate) -> per SKU of the chunk, its value or Missing: one marketplace call.
Fetch = Callable[[list[str], QuotaGate], dict[str, Any]]


class BatchLookups:
    """An adapter's look-ups of one kind: cached (`LookupCache`), and made ahead for the batch of
    calls being pushed, in a thread of their own.

    `plan(calls)` names the batch; on its first call, `values(call, ...)` reads the cache for every
    SKU of the batch and starts the look-ups of the others, chunk by chunk, in the order the calls'
    lanes reach them; each call waits only for the chunks that hold its SKUs. A thread's `plan`
    replaces the batch it planned before; the calls of a batch may be made from other threads
    (run_sync's lanes, one per operation), which share its look-ups. Look-ups take the gate's `reads` (wheel/services/sync_lease.py: the quota
    without the lease, since they change nothing at the marketplace) when it has one.
    """

    def __init__(self, cache: LookupCache, channel_id: str, kind: str, *, chunk_size: int,
                 encode: Callable[[Any], Any] = lambda v: v, decode: Callable[[Any], Any] = lambda v: v,
                 thread_name: str = "lookups", in_flight: int = 1):
        """`in_flight`: look-ups made at once (the adapter's own `Capabilities.in_flight`)."""
        self.cache, self.channel_id, self.kind = cache, channel_id, kind
        self.chunk_size = chunk_size
        self._encode, self._decode = encode, decode
        self._thread = look_up_thread(thread_name, in_flight)
        # The batch this thread planned last (dropped when it plans the next), and the one it made
        # a call of last; batches by call, for calls made from other threads than the planner's.
        self._local = threading.local()
        self._by_call: dict[int, _Batch] = {}
        self._lock = threading.Lock()

    def plan(self, calls: Sequence[Any]) -> None:
        self._drop()
        self._register(_Batch(list(calls)))

    def values(self, call: Any, skus: Sequence[str], fetch: Fetch, quota: QuotaGate, *,
               fresh: Callable[[Any], set[str]] = lambda call: set()) -> dict[str, Any]:
        """Per SKU of `skus` (the call's), its value or Missing. `fresh(call)`: SKUs of a call that
        are looked up afresh, whatever the cache holds."""
        with self._lock:
            batch = self._by_call.get(id(call))
        if batch is None:
            self._drop()
            batch = self._register(_Batch([call]))
        self._local.current = batch
        with batch.lock:
            if not batch.started:
                self._start(batch, fetch, quota, fresh)
                batch.started = True
        batch.known.update(batch.ahead.wait(skus))
        # Dropped since the batch began (`forget`, on a refusal of an earlier call): looked up now.
        again = [s for s in dict.fromkeys(skus) if s not in batch.known]
        for chunk in chunked(again, self.chunk_size):
            batch.known.update(self._fetch(chunk, quota, fetch=fetch))
        return {s: batch.known[s] for s in skus if s in batch.known}

    def forget(self, skus: Iterable[str]) -> None:
        """Drop them from the cache, for every worker (a refusal that may come of a stale value)."""
        skus = set(skus)
        if not skus:
            return
        self.cache.invalidate(self.channel_id, self.kind, skus)
        batch = getattr(self._local, "current", None)
        if batch is not None:
            batch.ahead.drop(skus)
            for sku in skus:
                batch.known.pop(sku, None)

    def remember(self, values: Mapping[str, Any]) -> None:
        """Values learnt otherwise (reading listings)."""
        self.cache.put_many(self.channel_id, self.kind, {s: self._encode(v) for s, v in values.items()})

    def _start(self, batch: _Batch, fetch: Fetch, quota: QuotaGate, fresh: Callable[[Any], set[str]]) -> None:
        order = list(dict.fromkeys(s for c in _as_the_lanes_go(batch.calls) for s in _skus(c)))
        renew = set().union(*(fresh(c) for c in batch.calls))
        cached = self.cache.get_many(self.channel_id, self.kind, [s for s in order if s not in renew])
        for sku, value in cached.items():
            decoded = self._decode(value)
            if decoded is not None:
                batch.known[sku] = decoded
        wanted = [s for s in order if s not in batch.known]
        gate = getattr(quota, "reads", quota)
        batch.ahead = LookAhead(self._thread, functools.partial(self._fetch, gate=gate, fetch=fetch),
                                chunked(wanted, self.chunk_size))

    def _fetch(self, chunk: list[str], gate: QuotaGate, *, fetch: Fetch) -> dict[str, Any]:
        try:
            found = fetch(chunk, gate)
        except TransientError as exc:
            if exc.status == 429:
                # Empty the look-ups' bucket (not the updates'), and have the call wait for it.
                raise gate.throttled(exc.retry_after) from None
            raise
        values = {s: v for s, v in found.items() if not isinstance(v, Missing)}
        self.cache.put_many(self.channel_id, self.kind, {s: self._encode(v) for s, v in values.items()})
        gone = [s for s in chunk if s not in values]
        if gone:
            self.cache.invalidate(self.channel_id, self.kind, gone)
        return {s: found.get(s, Missing(None)) for s in chunk}

    def _register(self, batch: _Batch) -> _Batch:
        """The batch this thread planned; its calls may be made from other threads too (run_sync's
        lanes), which find it by call."""
        with self._lock:
            for call in batch.calls:
                self._by_call[id(call)] = batch
        self._local.batch = batch
        return batch

    def _drop(self) -> None:
        batch = getattr(self._local, "batch", None)
        if batch is not None:
            batch.ahead.cancel()
            with self._lock:
                for call in batch.calls:
                    if self._by_call.get(id(call)) is batch:
                        del self._by_call[id(call)]
        self._local.batch = self._local.current = None


@dataclass
class _Batch:
    """A batch of calls being pushed, and what is known of its SKUs (values, or Missing)."""

    calls: list[Any]
    known: dict[str, Any] = field(default_factory=dict)
    ahead: LookAhead = field(default_factory=lambda: LookAhead())
    started: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _as_the_lanes_go(calls: Sequence[Any]) -> list[Any]:
    """The calls in the order their lanes reach them (one lane per operation, side by side:
    wheel/services/sync_lanes.py): the n-th call of every operation before the (n+1)-th of any,
    then in the batch's order. Looked up in plan order, a stock call early in its lane that names a
    SKU with no new price would wait for every price call's look-ups, and its lane with it."""
    position: Counter[Any] = Counter()
    keyed = []
    for index, call in enumerate(calls):
        operation = getattr(call, "operation", None)
        keyed.append((position[operation], index, call))
        position[operation] += 1
    return [call for _, _, call in sorted(keyed, key=lambda k: k[:2])]


def _skus(call: Any) -> list[str]:
    return [u.sku for u in call.updates]


def chunked(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[start:start + size]) for start in range(0, len(items), size)]


def look_up_thread(name: str, in_flight: int = 1) -> ThreadPoolExecutor:
    """An adapter's threads for its look-ups, `in_flight` of them: chunks start in order, and with
    more than one, a look-up slower than its bucket's pace (the answer, then the cache write) does
    not hold the next back, so the look-ups keep up with the updates that wait for them. The
    bucket paces them all the same. The threads end when the adapter is dropped."""
    return ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix=name)
