"""What a push looks up (Flipkart's FSNs, location ids and listing status; Amazon's product types):
kept in Postgres for every worker and run, looked up in batches ahead of the updates, dropped on
expiry or on a refusal that may come of a stale value. Real sandbox, real Postgres."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest
from sqlalchemy import text

from sandbox.app import ChannelBehaviour
from tests.support.gates import RecordingGate
from wheel.domain import ItemResult, ListingUpdate, Price
from wheel.marketplaces import amazon, flipkart
from wheel.marketplaces.base import ChannelConfig, HttpConfig
from wheel.services.channels import add_channel
from wheel.services.lookup_cache import PostgresLookupCache

HTTP = HttpConfig(2, 10)
# The gate here never waits: the sandbox's quotas are raised out of the way (the real gate is tested apart).
OUT_OF_THE_WAY = {op: [1000.0, 1000.0] for op in ("getListings", "updateInventory", "updatePrice", "getListingsItem",
                                                  "searchListingsItems", "patchListingsItem")}
APP_ID, APP_SECRET = "app-lk", "secret-lk-0123456789"
LWA = {"client_id": "amzn1.application-oa2-client.lk", "client_secret": "client-SECRET-lk", "refresh_token": "Atzr|lk"}


class ThreadGate(RecordingGate):
    """Remembers which thread took each token too."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def acquire(self, operation: str) -> None:
        with self._lock:
            super().acquire(operation)
            self.threads.append((operation, threading.current_thread().name))


@pytest.fixture
def flipkart_channel(sandbox, secrets, sessions) -> ChannelConfig:
    sandbox.state.channels["LF"] = ChannelBehaviour(marketplace="flipkart", client_id=APP_ID, token=APP_SECRET,
                                                    quotas=OUT_OF_THE_WAY)
    (secrets.secrets_dir / "flipkart-lf").write_text(json.dumps({"app_id": APP_ID, "app_secret": APP_SECRET}))
    base_url = f"{sandbox.base_url}/flipkart"
    with sessions.begin() as session:
        add_channel(session, channel_id="LF", marketplace="flipkart", base_url=base_url,
                    credentials_ref="flipkart-lf", known_marketplaces=("flipkart",))
    return ChannelConfig(id="LF", marketplace="flipkart", base_url=base_url, credentials_ref="flipkart-lf")


@pytest.fixture
def amazon_channel(sandbox, secrets, sessions) -> ChannelConfig:
    sandbox.state.channels["LA"] = ChannelBehaviour(marketplace="amazon", token=LWA["refresh_token"],
                                                    client_id=LWA["client_id"], client_secret=LWA["client_secret"],
                                                    quotas=OUT_OF_THE_WAY)
    (secrets.secrets_dir / "amazon-la").write_text(json.dumps(LWA))
    base_url = f"{sandbox.base_url}/amazon"
    options = {"seller_id": "LA", "lwa_url": f"{sandbox.base_url}/amazon/auth/o2/token"}
    with sessions.begin() as session:
        add_channel(session, channel_id="LA", marketplace="amazon", base_url=base_url, credentials_ref="amazon-la",
                    known_marketplaces=("amazon",), options=options)
    return ChannelConfig(id="LA", marketplace="amazon", base_url=base_url, credentials_ref="amazon-la",
                         options=options)


def worker(channel: ChannelConfig, secrets, sessions, ttl_s: float = 900.0):
    """The adapter one worker process would build (workers/bootstrap.py: Container.adapter)."""
    factory = flipkart.make_adapter if channel.marketplace == "flipkart" else amazon.make_adapter
    return factory(channel, HTTP, secrets, PostgresLookupCache(sessions, ttl_s))


def stock(sku: str, quantity: int) -> ListingUpdate:
    return ListingUpdate(sku=sku, ean=f"E-{sku}", quantity=quantity, ranged=True)


def priced(sku: str, selling: str) -> ListingUpdate:
    return ListingUpdate(sku=sku, ean=f"E-{sku}", price=Price(Decimal("1000"), Decimal(selling)))


def push(adapter, gate, updates) -> list[ItemResult]:
    planned, refused = adapter.plan(updates)
    return refused + [r for n, call in enumerate(planned) for r in adapter.execute(call, gate, request_id=f"r{n}")]


def calls(sandbox, operation: str) -> list:
    with sandbox.state.lock:
        return [c for c in sandbox.state.calls if c.operation == operation]


def cached(sessions, channel_id: str) -> dict[str, dict]:
    with sessions() as session:
        rows = session.execute(text("SELECT sku, value, expires_at - fetched_at AS ttl FROM marketplace_lookups "
                                    "WHERE channel_id = :c"), {"c": channel_id}).all()
    return {row.sku: {"value": row.value, "ttl_s": row.ttl.total_seconds()} for row in rows}


SKUS = [f"K{n:02d}" for n in range(25)]


# -- Flipkart ---------------------------------------------------------------------------------


def test_flipkart_looks_up_a_batch_ten_skus_a_call_in_a_thread_of_its_own(sandbox, flipkart_channel, secrets,
                                                                           sessions):
    gate = ThreadGate()
    results = push(worker(flipkart_channel, secrets, sessions), gate,
                   [stock(s, 1) for s in SKUS] + [priced(s, "900") for s in SKUS[:5]])

    assert all(r.ok for r in results) and len(results) == 25 * 2 + 5
    # Every SKU of the batch once, in the order of the calls that need them, 10 a call (two at a
    # time: the second may reach the marketplace first).
    looked_up = sorted(c.body["skus"] for c in calls(sandbox, "getListings"))
    assert looked_up == [SKUS[:10], SKUS[10:20], SKUS[20:]]
    # On getListings' own bucket, from the look-up threads, while the updates go from the pushing one.
    assert {thread for op, thread in gate.threads if op == "getListings"} <= {"flipkart-lookups-LF_0",
                                                                              "flipkart-lookups-LF_1"}
    assert {thread for op, thread in gate.threads if op != "getListings"} == {threading.current_thread().name}


def test_flipkart_look_ups_go_two_at_a_time_so_a_slow_answer_does_not_hold_the_next(sandbox, flipkart_channel,
                                                                                   secrets, sessions):
    # One look-up at a time would make them a call's round trip apart: on a slow or busy link,
    # slower than getListings' bucket allows, and the updates waiting for them slower still.
    sandbox.state.channels["LF"].delay_s = 0.5
    results = push(worker(flipkart_channel, secrets, sessions), RecordingGate(), [stock(s, 1) for s in SKUS[:20]])

    assert all(r.ok for r in results) and len(results) == 20 * 2  # its stock and its listing
    first, second = sorted(c.received_at for c in calls(sandbox, "getListings"))
    assert second - first < 0.25, "the second look-up waited for the first one's answer"


def test_flipkart_a_second_run_looks_nothing_up(sandbox, flipkart_channel, secrets, sessions):
    adapter, gate = worker(flipkart_channel, secrets, sessions), RecordingGate()
    push(adapter, gate, [stock(s, 1) for s in SKUS])
    first = len(calls(sandbox, "getListings"))

    results = push(adapter, gate, [stock(s, 2) for s in SKUS] + [priced(s, "800") for s in SKUS])

    assert first == 3 and len(calls(sandbox, "getListings")) == 3
    assert all(r.ok for r in results) and len(calls(sandbox, "updateInventory")) == 6
    entry = cached(sessions, "LF")["K00"]
    assert entry["value"] == {"product_id": sandbox.state.listing("LF", "K00")["product_id"],
                              "locations": ["LOC-LF"], "not_on_sale": None}
    assert entry["ttl_s"] == 900


def test_flipkart_two_workers_share_the_look_ups(sandbox, flipkart_channel, secrets, sessions):
    one, other = worker(flipkart_channel, secrets, sessions), worker(flipkart_channel, secrets, sessions)
    push(one, RecordingGate(), [stock(s, 1) for s in SKUS[:12]])

    results = push(other, RecordingGate(), [stock(s, 3) for s in SKUS])

    assert all(r.ok for r in results)
    # The other worker looked up only what the first had not (each worker's two at a time).
    assert sorted(c.body["skus"] for c in calls(sandbox, "getListings")) == [SKUS[:10], SKUS[10:12], SKUS[12:22],
                                                                             SKUS[22:]]


def test_flipkart_an_expired_look_up_is_made_again(sandbox, flipkart_channel, secrets, sessions):
    adapter = worker(flipkart_channel, secrets, sessions, ttl_s=1.0)
    push(adapter, RecordingGate(), [stock("K00", 1)])
    assert cached(sessions, "LF")["K00"]["ttl_s"] == 1.0
    with sandbox.state.lock:
        sandbox.state.listing("LF", "K00")["listing_status"] = "INACTIVE"
    push(adapter, RecordingGate(), [stock("K00", 2)])
    assert len(calls(sandbox, "getListings")) == 1  # not expired yet: the listing looks ACTIVE still

    time.sleep(1.1)
    results = push(adapter, RecordingGate(), [stock("K00", 3)])

    assert len(calls(sandbox, "getListings")) == 2
    assert [(r.ok, r.code) for r in results] == [(False, "LISTING_INACTIVE"), (False, "LISTING_INACTIVE")]


def test_flipkart_a_refusal_of_a_stale_fsn_drops_it_for_every_worker_and_the_retry_looks_it_up(
        sandbox, flipkart_channel, secrets, sessions):
    one, other = worker(flipkart_channel, secrets, sessions), worker(flipkart_channel, secrets, sessions)
    push(one, RecordingGate(), [stock("K00", 1), stock("K01", 1)])
    with sandbox.state.lock:
        sandbox.state.listing("LF", "K00")["product_id"] = "FSNRELISTED0001"  # the seller re-created the listing

    refused = push(one, RecordingGate(), [stock("K00", 2), stock("K01", 2)])

    assert [(r.sku, r.ok, r.code) for r in refused] == [("K00", False, "4102"), ("K00", False, "4102"),
                                                         ("K01", True, None), ("K01", True, None)]
    assert set(cached(sessions, "LF")) == {"K01"}
    # The retry, by whichever worker, looks the FSN up afresh (and only that one) and lands.
    retried = push(other, RecordingGate(), [stock("K00", 2), stock("K01", 2)])
    assert all(r.ok for r in retried)
    assert [c.body["skus"] for c in calls(sandbox, "getListings")] == [["K00", "K01"], ["K00"]]
    assert cached(sessions, "LF")["K00"]["value"]["product_id"] == "FSNRELISTED0001"


def test_flipkart_a_refusal_in_one_call_has_the_next_call_of_the_batch_look_it_up_again(
        sandbox, flipkart_channel, secrets, sessions):
    adapter = worker(flipkart_channel, secrets, sessions)
    push(adapter, RecordingGate(), [stock("K00", 1)])
    with sandbox.state.lock:
        sandbox.state.listing("LF", "K00")["product_id"] = "FSNRELISTED0002"

    # The price goes first and is refused (stale FSN); the stock, in the same batch, looks it up again.
    results = push(adapter, RecordingGate(), [priced("K00", "900"), stock("K00", 2)])

    assert [(r.field, r.ok) for r in results] == [("price", False), ("ranged", True), ("quantity", True)]
    assert len(calls(sandbox, "getListings")) == 2


def test_flipkart_a_sku_flipkart_does_not_hold_is_not_cached(sandbox, flipkart_channel, secrets, sessions):
    adapter = worker(flipkart_channel, secrets, sessions)
    push(adapter, RecordingGate(), [stock("NOT-LISTED-1", 1), stock("K00", 1)])
    results = push(adapter, RecordingGate(), [stock("NOT-LISTED-1", 1)])

    assert [r.code for r in results] == ["SKU_NOT_LISTED", "SKU_NOT_LISTED"]
    assert set(cached(sessions, "LF")) == {"K00"}
    assert [c.body["skus"] for c in calls(sandbox, "getListings")] == [["NOT-LISTED-1", "K00"], ["NOT-LISTED-1"]]


# -- Amazon -----------------------------------------------------------------------------------


def test_amazon_product_types_are_looked_up_20_a_search_and_shared_by_every_worker(sandbox, amazon_channel, secrets,
                                                                                    sessions):
    one, other = worker(amazon_channel, secrets, sessions), worker(amazon_channel, secrets, sessions)
    results = push(one, RecordingGate(), [stock(s, 1) for s in SKUS])
    assert all(r.ok for r in results)
    # 25 SKUs: two searches (20 SKUs, then 5), no get per SKU.
    assert len(calls(sandbox, "searchListingsItems")) == 2 and calls(sandbox, "getListingsItem") == []

    results = push(other, RecordingGate(), [stock(s, 2) for s in SKUS] + [priced(s, "700") for s in SKUS[:3]])

    assert all(r.ok for r in results) and len(results) == 25 * 2 + 3
    assert len(calls(sandbox, "searchListingsItems")) == 2 and calls(sandbox, "getListingsItem") == []
    assert cached(sessions, "LA")["K00"] == {"value": "PRODUCT", "ttl_s": 900}


def test_amazon_an_expired_product_type_is_looked_up_again(sandbox, amazon_channel, secrets, sessions):
    adapter = worker(amazon_channel, secrets, sessions, ttl_s=1.0)
    push(adapter, RecordingGate(), [stock("K00", 1)])
    push(adapter, RecordingGate(), [stock("K00", 2)])
    assert len(calls(sandbox, "getListingsItem")) == 1

    time.sleep(1.1)
    push(adapter, RecordingGate(), [stock("K00", 3)])

    assert len(calls(sandbox, "getListingsItem")) == 2


def test_flipkart_looks_up_in_the_order_the_lanes_need_the_skus(sandbox, flipkart_channel, secrets, sessions):
    # Stock and price go in lanes of their own, side by side (wheel/services/sync_lanes.py). B0 has
    # a new stock and no new price: its stock call is the stock lane's first, so its look-up must
    # not wait behind every price call's (the lane would stall until the batch's last look-up).
    both = [f"A{n:02d}" for n in range(20)]
    updates = [stock("B0", 1)] + [ListingUpdate(sku=s, ean=f"E-{s}", quantity=2, ranged=True,
                                                price=Price(Decimal("1000"), Decimal("900"))) for s in both]
    results = push(worker(flipkart_channel, secrets, sessions), RecordingGate(), updates)

    assert all(r.ok for r in results)
    looked_up = sorted(sorted(c.body["skus"]) for c in calls(sandbox, "getListings"))
    # The n-th call of each lane before the (n+1)-th of either: B0 with the second price call's SKUs.
    assert looked_up == [both[:10], sorted(["B0", *both[10:19]]), [both[19]]]
