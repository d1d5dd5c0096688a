"""The Redis token bucket every worker shares (contract 3), and what a 429 does to it."""

from __future__ import annotations

import threading

import pytest
import redis

from wheel.marketplaces.base import Quota, QuotaWait
from wheel.quota import RedisQuotaGate


@pytest.fixture
def client(settings):
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    yield client
    client.close()


def test_a_429_empties_the_bucket_for_every_worker_and_says_how_long_to_wait(client):
    quotas = {"searchOrders": Quota(0.5, 20)}
    mine, other = RedisQuotaGate(client, "UZ", quotas), RedisQuotaGate(client, "UZ", quotas, max_inline_wait_s=0)
    mine.acquire("searchOrders")  # 19 tokens left

    wait = mine.throttled(None)  # SP-API's 429 has no Retry-After

    assert wait.operation == "searchOrders" and 1.9 < wait.retry_in_s < 2.2  # the next token at 0.5/s (x0.97)
    with pytest.raises(QuotaWait) as refused:
        other.acquire("searchOrders")  # another worker's gate: the bucket is shared
    assert 1.5 < refused.value.retry_in_s < 2.2


def test_a_retry_after_longer_than_the_bucket_holds_it_empty_that_long(client):
    gate = RedisQuotaGate(client, "UF", {"updateInventory": Quota(5, 5)}, max_inline_wait_s=0)
    gate.acquire("updateInventory")

    wait = gate.throttled(30.0)

    assert 29 < wait.retry_in_s < 31
    with pytest.raises(QuotaWait) as refused:
        gate.acquire("updateInventory")
    assert 28 < refused.value.retry_in_s < 31


def test_a_429_for_an_operation_without_a_quota_waits_a_second_or_the_retry_after(client):
    gate = RedisQuotaGate(client, "UT", {})
    gate.acquire("ranging")
    assert (gate.throttled(None).retry_in_s, gate.throttled(7.0).retry_in_s) == (1.0, 7.0)


def test_a_429_answers_the_last_request_of_its_own_thread(client):
    # An adapter looks up in a thread of its own while it updates (wheel/marketplaces/lookups.py):
    # a 429 on a look-up empties the look-ups' bucket, not the bucket of the update sent meanwhile.
    gate = RedisQuotaGate(client, "UF", {"updatePrice": Quota(5, 5), "getListings": Quota(5, 5)}, max_inline_wait_s=0)
    looked_up = threading.Event()
    seen: list[str] = []

    def look_up():
        gate.acquire("getListings")
        looked_up.set()
        seen.append(gate.throttled(None).operation)

    gate.acquire("updatePrice")
    thread = threading.Thread(target=look_up)
    thread.start()
    thread.join(5)

    assert looked_up.is_set() and seen == ["getListings"]
    assert gate.last_operation == "updatePrice"
    gate.acquire("updatePrice")  # the updates' bucket was not emptied
    with pytest.raises(QuotaWait):
        gate.acquire("getListings")


def test_the_wait_for_a_createfeed_token_is_read_without_taking_one(client):
    # createFeed: 0.0083/s, burst 15 (14 kept, BURST_MARGIN); the push asks how long until its feed could go.
    gate = RedisQuotaGate(client, "UZ", {"createFeed": Quota(0.0083, 15)}, max_inline_wait_s=0)
    assert gate.wait_s("createFeed") == 0.0  # a fresh bucket is full
    for _ in range(14):
        gate.acquire("createFeed")
    first = gate.wait_s("createFeed")
    assert 120 < first <= 1 / (0.0083 * 0.97)  # the next token at 97% of the rate
    assert gate.wait_s("createFeed") <= first  # nothing was taken by asking
    assert gate.wait_s("createFeed", 2) > first + 120
    assert gate.wait_s("searchOrders") == 0.0  # no published quota: nothing to wait for
    gate.throttled()  # a 429 empties it: the wait is the next token's
    assert gate.wait_s("createFeed") > 100
