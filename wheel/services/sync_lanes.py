"""Making the calls of one planned batch: in order, or side by side, a lane per operation.

A marketplace whose operations have quota buckets of their own (Flipkart: updateInventory and
updatePrice, each its own rate) can take both at their full rate at once. Made one after the
other, a catalogue-wide change of stock and price takes the two operations' times end to end;
made in one lane per operation, it takes the busier one's. Each lane makes its calls in the plan's
order, and a call waits for every earlier call of the plan that carries one of its SKUs, so a
SKU's calls still reach the marketplace in the order the adapter planned them (Flipkart: its price
before the stock that puts it on sale, wheel/marketplaces/flipkart/mapping.py::plan).

The first attempt that stops the run (the quota, the lease, a transient failure, refused
credentials) stops every lane before its next call; what was not started is reported unstarted,
and run_sync handles it exactly as it does in series (wheel/services/sync.py::_push).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from wheel.domain import ItemResult
from wheel.marketplaces.base import Call, Submitted
from wheel.marketplaces.errors import AuthError, ConfigurationError, PermanentError


@dataclass
class Attempt:
    """One call made: its verdicts, or what it raised."""

    index: int
    call: Call
    results: list[ItemResult] | Submitted | None = None
    error: BaseException | None = None

    @property
    def stops(self) -> bool:
        """Whether the run stops after it (a PermanentError is a verdict on the call's SKUs only;
        refused credentials or an unusable setting are the channel's, and stop it)."""
        return self.error is not None and not self.refused

    @property
    def refused(self) -> bool:
        """The marketplace refused the call's SKUs for good: a verdict on them, the run goes on."""
        return isinstance(self.error, PermanentError) and not isinstance(self.error, (AuthError, ConfigurationError))


def make_calls(calls: Sequence[Call], attempt: Callable[[int, Call], Attempt], *, in_flight: int = 0) -> list[Attempt]:
    """The attempts made, by index; the calls after a stopping attempt (in series), or not yet
    started in any lane when one stopped, are not attempted. `in_flight`: requests each operation
    may have in flight at once (0 or 1 with a single operation: one call at a time, in series)."""
    operations = list(dict.fromkeys(call.operation for call in calls))
    if not calls:
        return []  # everything was refused before a call (Flipkart: a price in paise)
    if in_flight < 1 or (in_flight == 1 and len(operations) < 2):
        made: list[Attempt] = []
        for index, call in enumerate(calls):
            made.append(attempt(index, call))
            if made[-1].stops:
                break
        return made
    return _side_by_side(calls, attempt, operations, in_flight)


def _side_by_side(calls: Sequence[Call], attempt: Callable[[int, Call], Attempt],
                  operations: list[str], in_flight: int) -> list[Attempt]:
    # A call waits for the call before it that carries each of its SKUs (that one waits for the
    # one before it, and so on).
    last: dict[str, int] = {}
    waits_for: list[set[int]] = []
    for index, call in enumerate(calls):
        skus = {u.sku for u in call.updates}
        waits_for.append({last[sku] for sku in skus if sku in last})
        for sku in skus:
            last[sku] = index
    finished = [threading.Event() for _ in calls]
    stop = threading.Event()
    made: dict[int, Attempt] = {}
    lock = threading.Lock()
    # Each operation's calls, in the plan's order; its lane's threads take the next one in turn.
    lanes = {operation: iter([i for i, call in enumerate(calls) if call.operation == operation])
             for operation in operations}

    def lane(operation: str) -> None:
        while True:
            with lock:
                index = next(lanes[operation], None)
            if index is None:
                return
            try:
                for earlier in waits_for[index]:
                    finished[earlier].wait()
                if stop.is_set():
                    continue  # not made; the lane's other calls are passed over the same way
                made[index] = done = attempt(index, calls[index])
                if done.stops:
                    stop.set()
            finally:
                finished[index].set()  # made or not: whatever waits for it may go on (or stop)

    threads = len(operations) * in_flight
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sync-lane") as pool:
        # Each thread runs in a copy of this context: the log context (task, channel) goes with it.
        futures = [pool.submit(contextvars.copy_context().run, lane, operation)
                   for operation in operations for _ in range(in_flight)]
        for future in futures:
            future.result()
    return [made[index] for index in sorted(made)]
