"""The calls of a batch side by side (wheel/services/sync_lanes.py): a SKU's calls in the plan's
order whatever the lanes do, and a stopping attempt stops every lane before its next call."""

from __future__ import annotations

import random
import threading
import time

from wheel.domain import ListingUpdate
from wheel.marketplaces.base import Call, QuotaWait
from wheel.marketplaces.errors import PermanentError
from wheel.services.sync_lanes import Attempt, make_calls


def call(operation: str, *skus: str) -> Call:
    return Call(operation=operation, updates=tuple(ListingUpdate(sku=s, ean=f"E-{s}") for s in skus),
                fields=frozenset(), kind=operation)


class Recorder:
    def __init__(self, fail: dict[int, BaseException] | None = None, jitter_s: float = 0.01):
        self.fail, self.jitter_s = fail or {}, jitter_s
        self.started: list[int] = []
        self.ended: list[int] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, index: int, made: Call) -> Attempt:
        with self.lock:
            self.started.append(index)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(random.uniform(0, self.jitter_s))
        with self.lock:
            self.ended.append(index)
            self.in_flight -= 1
        return Attempt(index, made, error=self.fail.get(index), results=None if index in self.fail else [])


def test_in_series_each_call_waits_for_the_one_before():
    calls = [call("updatePrice", "A"), call("updateInventory", "B"), call("updatePrice", "C")]
    record = Recorder()
    made = make_calls(calls, record, in_flight=0)
    assert [a.index for a in made] == [0, 1, 2] and record.most_in_flight == 1


def test_side_by_side_a_skus_calls_keep_the_plans_order():
    rng = random.Random(7)
    skus = [f"S{n}" for n in range(200)]
    calls = [call("updateInventory", *rng.sample(skus, 5)) for _ in range(6)]
    calls += [call("updatePrice", *rng.sample(skus, 5)) for _ in range(6)]
    calls += [call("updateInventory", *rng.sample(skus, 5)) for _ in range(6)]
    record = Recorder()

    made = make_calls(calls, record, in_flight=2)

    assert sorted(a.index for a in made) == list(range(len(calls)))
    assert record.most_in_flight > 1  # side by side indeed
    for sku in skus:
        mine = [i for i, c in enumerate(calls) if any(u.sku == sku for u in c.updates)]
        # each of its calls started only after the one before it had ended
        for earlier, later in zip(mine, mine[1:]):
            assert record.ended.index(earlier) < record.started.index(later), (sku, earlier, later)


def test_a_stopping_attempt_stops_every_lane_and_a_refusal_does_not():
    calls = [call("updatePrice", f"P{n}") for n in range(20)] + [call("updateInventory", f"I{n}") for n in range(20)]
    record = Recorder(fail={1: PermanentError("refused"), 3: QuotaWait("updatePrice", 5.0)}, jitter_s=0.005)

    made = make_calls(calls, record, in_flight=2)

    indexes = {a.index for a in made}
    assert {1, 3} <= indexes
    assert len(indexes) < len(calls)  # the calls after the stop were not made
    assert [a.index for a in made if a.stops] == [3]


def test_a_batch_with_no_call_makes_none():
    # Every update refused before a call (a Flipkart price in paise): found by the e2e suite.
    assert make_calls([], Recorder(), in_flight=2) == []
