"""Amazon order pulls (searchOrders) through the real adapter against the real sandbox server (in a
thread): pages, cursors, cancellations, the 2-minute rule and the quota. No database needed."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from sandbox.app import ChannelBehaviour
from wheel.domain import Address
from wheel.marketplaces.amazon import AmazonAdapter, make_adapter
from wheel.marketplaces.base import ChannelConfig, HttpConfig, PullWindow
from wheel.marketplaces.errors import PermanentError, TransientError
from wheel.secrets import SecretStore

CLIENT_ID, CLIENT_SECRET, REFRESH = "amzn1.application-oa2-client.ua", "client-secret", "Atzr|refresh"
LAG_S = 0.5


@pytest.fixture
def connect(sandbox, tmp_path: Path):
    """An adapter for channel UA, after telling the sandbox how UA behaves."""

    def connect(options: dict | None = None, **behaviour) -> AmazonAdapter:
        sandbox.state.channels["UA"] = ChannelBehaviour(marketplace="amazon", token=REFRESH, client_id=CLIENT_ID,
                                                        client_secret=CLIENT_SECRET, **behaviour)
        (tmp_path / "amazon-ua").write_text(json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                                        "refresh_token": REFRESH}))
        channel = ChannelConfig(
            id="UA", marketplace="amazon", base_url=f"{sandbox.base_url}/amazon", credentials_ref="amazon-ua",
            options={"seller_id": "UA", "lwa_url": f"{sandbox.base_url}/amazon/auth/o2/token", **(options or {})},
        )
        return make_adapter(channel, HttpConfig(2, 10), SecretStore({}, tmp_path))

    return connect


def steer(sandbox, path: str, body: dict) -> dict:
    response = requests.post(f"{sandbox.base_url}/_sandbox/{path}", json={"channel": "UA", **body}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def now() -> datetime:
    return datetime.now(timezone.utc)


def settled_window(start: datetime) -> PullWindow:
    """A window from `start` to now, once every change so far is past the sandbox's lag (the
    adapter sends whole seconds, rounded down, so wait a second more)."""
    time.sleep(LAG_S + 1.7)
    return PullWindow(start, now() - timedelta(seconds=LAG_S + 0.1))


def searches(sandbox) -> list:
    with sandbox.state.lock:
        return [c for c in sandbox.state.calls if c.operation == "searchOrders"]


def test_pull_capabilities_follow_the_channels_order_lag(connect):
    assert connect().pull_capabilities.settle_lag_s == 125
    capabilities = connect({"order_lag_s": LAG_S}).pull_capabilities
    assert (capabilities.jobs, capabilities.settle_lag_s, capabilities.overlap_s) == (("orders",), LAG_S + 5, 600)
    with pytest.raises(PermanentError, match="order_lag_s"):
        connect({"order_lag_s": "2m"})


def test_250_orders_and_20_cancellations_come_back_in_three_pages_and_resume_from_a_cursor(sandbox, connect, gate):
    adapter = connect({"order_lag_s": LAG_S}, order_lag_s=LAG_S, quota_scale=10_000)
    start = now() - timedelta(seconds=1)
    made = steer(sandbox, "orders", {"count": 250, "lines_per_order": 2, "seed": 7})["created"]
    created = {o["order_id"]: o for o in made}
    cancelled = {c["order_id"]: c for c in steer(sandbox, "cancellations", {"count": 20, "partial_share": 0.5,
                                                                             "seed": 7})["cancelled"]}
    assert {c["whole_order"] for c in cancelled.values()} == {True, False}
    window = settled_window(start)

    pages = list(adapter.pull("orders", window, None, gate))

    assert [len(p.raw) for p in pages] == [100, 100, 50]
    assert [p.cursor is None for p in pages] == [False, False, True] and all(p.calls == 1 for p in pages)
    assert gate.acquired == ["searchOrders"] * 3
    assert all(not p.failures for p in pages)
    got = {o.order_id: o for p in pages for o in p.orders}
    whole = {i for i, c in cancelled.items() if c["whole_order"]}
    assert set(got) == set(created) - whole
    for order_id, order in got.items():
        expected = created[order_id]
        assert order.payments[0].amount == Decimal(expected["total"]) and order.payments[0].reference == order_id
        assert [(l.line_id, l.sku, l.quantity, l.line_total) for l in order.lines] == [
            (l["line_id"], l["sku"], l["quantity"], Decimal(l["price"])) for l in expected["lines"]]
        ship_to = expected["ship_to"]
        assert order.ship_to == order.bill_to == Address(
            ship_to["first_name"], ship_to["last_name"], ship_to["line1"], ship_to["line2"], ship_to["city"],
            ship_to["state"], ship_to["zip_code"])
    cancellations = {c.order_id: c for p in pages for c in p.cancellations}
    assert set(cancellations) == set(cancelled)
    for order_id, cancellation in cancellations.items():
        assert cancellation.whole_order == cancelled[order_id]["whole_order"]
        assert [l.line_id for l in cancellation.lines] == cancelled[order_id]["line_ids"]
        assert cancellation.reason_code in ("BUYER", "MERCHANT", "AMAZON") and cancellation.reason_text
    assert set(pages[-1].raw) >= set(cancelled)  # cancelling moved them to the end of the window
    json.dumps([p.raw for p in pages])

    resumed = list(adapter.pull("orders", window, pages[0].cursor, gate))

    assert [list(p.raw) for p in resumed] == [list(p.raw) for p in pages[1:]]
    assert [p.cursor is None for p in resumed] == [False, True]
    calls = searches(sandbox)
    assert [c.status for c in calls] == [200] * 5
    assert [c.path for c in calls] == ["/amazon/orders/2026-01-01/orders"] * 5


def test_unit_prices_come_back_to_exact_line_totals_and_a_bad_sku_is_unmappable(sandbox, connect, gate):
    adapter = connect({"order_lag_s": LAG_S}, order_lag_s=LAG_S, quota_scale=10_000)
    start = now() - timedelta(seconds=1)
    steer(sandbox, "orders", {"orders": [
        {"order_id": "403-0000000-0000001", "lines": [{"sku": "S1", "price": "100", "quantity": 3},
                                                      {"sku": "S2", "price": "199.99", "quantity": 2}]},
        {"order_id": "403-0000000-0000002", "lines": [{"sku": "BAD SKU", "price": "10"}]},
    ]})

    (page,) = adapter.pull("orders", settled_window(start), None, gate)

    (order,) = page.orders
    assert [l.line_total for l in order.lines] == [Decimal("100.00"), Decimal("199.99")]
    assert order.payments[0].amount == Decimal("299.99")
    (failure,) = page.failures
    assert (failure.order_id, failure.kind) == ("403-0000000-0000002", "order") and "spaces" in failure.reason
    assert failure.raw == page.raw["403-0000000-0000002"]


def test_a_window_ending_within_the_lag_is_refused_with_amazons_message(sandbox, connect, gate):
    adapter = connect()  # the sandbox's 2-minute rule

    with pytest.raises(PermanentError) as refused:
        next(adapter.pull("orders", PullWindow(now() - timedelta(hours=1), now() - timedelta(seconds=60)), None, gate))

    assert refused.value.status == 400 and refused.value.code == "InvalidInput"
    assert "lastUpdatedBefore must be at least 120 seconds before the time of the request" in str(refused.value)


def test_the_sandbox_throttles_search_orders_past_its_burst_of_20(sandbox, connect, gate):
    adapter = connect()  # 0.0056 requests a second: no token comes back during the test
    window = PullWindow(now() - timedelta(hours=1), now() - timedelta(minutes=3))

    for _ in range(20):
        assert [p.orders for p in adapter.pull("orders", window, None, gate)] == [[]]
    with pytest.raises(TransientError) as throttled:
        list(adapter.pull("orders", window, None, gate))

    # SP-API's 429 carries no Retry-After: the caller's own bucket says when to come back.
    assert throttled.value.status == 429 and throttled.value.retry_after is None
    assert [c.status for c in searches(sandbox)] == [200] * 20 + [429]


def test_only_merchant_fulfilled_orders_are_pulled_unless_the_channel_asks_for_fba_too(sandbox, connect, gate):
    start = now() - timedelta(seconds=1)
    adapter = connect({"order_lag_s": LAG_S}, order_lag_s=LAG_S, quota_scale=10_000)
    steer(sandbox, "orders", {"orders": [
        {"order_id": "403-0000000-0000001", "lines": [{"sku": "S1", "price": "10"}]},
        {"order_id": "403-0000000-0000002", "fulfilled_by": "AMAZON", "status": "SHIPPED",
         "lines": [{"sku": "S2", "price": "20"}]},
    ]})
    window = settled_window(start)

    (page,) = adapter.pull("orders", window, None, gate)
    (both,) = connect({"order_lag_s": LAG_S, "fulfilled_by": ["MERCHANT", "AMAZON"]},
                      order_lag_s=LAG_S, quota_scale=10_000).pull("orders", window, None, gate)

    assert [o.order_id for o in page.orders] == ["403-0000000-0000001"]
    assert [o.order_id for o in both.orders] == ["403-0000000-0000001", "403-0000000-0000002"]
    for bad in ("MERCHANT", [], ["MERCHANT", "MERCHANT"], ["FBA"], [{"x": 1}]):
        with pytest.raises(PermanentError, match="options.fulfilled_by must be a list of MERCHANT and/or AMAZON"):
            connect({"fulfilled_by": bad})


# -- what the sandbox answers (raw searchOrders calls) ------------------------------------------

BASIC_ORDER = {"orderId", "createdTime", "lastUpdatedTime", "salesChannel", "orderItems"}
BASIC_ITEM = {"orderItemId", "quantityOrdered", "product"}


def search(sandbox, **params) -> list[dict]:
    """searchOrders as any SP-API client calls it, for every order the sandbox holds (created in the
    last hour and settled); the orders answered."""
    token = requests.post(f"{sandbox.base_url}/amazon/auth/o2/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}).json()["access_token"]
    query = {"marketplaceIds": "A21TJRUUN4KGV", "lastUpdatedAfter": (now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             **params}
    answer = requests.get(f"{sandbox.base_url}/amazon/orders/2026-01-01/orders", params=query, timeout=10,
                          headers={"x-amz-access-token": token})
    assert answer.status_code == 200, answer.text
    return answer.json()["orders"]


def test_the_sandbox_answers_each_data_set_only_when_included_data_asks_for_it(sandbox, connect):
    connect(order_lag_s=0)
    [order] = steer(sandbox, "orders", {"orders": [{"lines": [{"sku": "S1", "price": "100", "quantity": 2},
                                                              {"sku": "S2", "price": "50"}]}]})["created"]
    steer(sandbox, "cancellations", {"cancellations": [{"order_id": order["order_id"],
                                                        "line_ids": [order["lines"][1]["line_id"]]}]})

    [basic] = search(sandbox)
    assert set(basic) == BASIC_ORDER
    assert all(set(item) == BASIC_ITEM for item in basic["orderItems"])
    for dataset, on_order, on_item in [("BUYER", {"buyer"}, set()), ("RECIPIENT", {"recipient"}, set()),
                                       ("PROCEEDS", {"proceeds"}, {"proceeds"}),
                                       ("FULFILLMENT", {"fulfillment"}, {"fulfillment"}),
                                       ("CANCELLATION", set(), {"cancellation"})]:
        [answered] = search(sandbox, includedData=dataset)
        assert set(answered) == BASIC_ORDER | on_order, dataset
        live, cancelled = answered["orderItems"]
        assert set(live) == BASIC_ITEM | (on_item - {"cancellation"}), dataset
        assert set(cancelled) == BASIC_ITEM | (on_item - {"proceeds"}), dataset
    [everything] = search(sandbox, includedData="BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,CANCELLATION")
    assert everything["fulfillment"] == {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"}
    assert everything["orderItems"][1]["cancellation"]["cancellationExecution"]["cancelledBy"] in ("BUYER", "MERCHANT", "AMAZON")


def test_a_cancelled_order_has_no_recipient_nor_proceeds_and_cancelled_items_can_come_with_quantity_0(sandbox, connect):
    connect(order_lag_s=0)
    [order] = steer(sandbox, "orders", {"orders": [{"lines": [{"sku": "S1", "price": "100", "quantity": 2}]}]})["created"]
    steer(sandbox, "cancellations", {"cancellations": [{"order_id": order["order_id"], "type": "seller_cancellation"}]})
    everything = "BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,CANCELLATION"

    [kept] = search(sandbox, includedData=everything)
    sandbox.state.channels["UA"].cancelled_quantity_zero = True
    [zero] = search(sandbox, includedData=everything)

    for answered in (kept, zero):
        assert "recipient" not in answered and "proceeds" not in answered
        assert answered["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
        assert answered["orderItems"][0]["cancellation"]["cancellationExecution"]["cancelledBy"] == "MERCHANT"
    assert kept["orderItems"][0]["quantityOrdered"] == 2 and kept["orderItems"][0]["product"]["price"]["unitPrice"]
    assert zero["orderItems"][0]["quantityOrdered"] == 0 and "price" not in zero["orderItems"][0]["product"]


def test_the_sandbox_filters_by_fulfilled_by_and_fulfillment_status(sandbox, connect):
    connect(order_lag_s=0)
    made = steer(sandbox, "orders", {"orders": [
        {"order_id": "MFN-UNSHIPPED", "lines": [{"sku": "S1", "price": "10"}]},
        {"order_id": "MFN-SHIPPED", "status": "SHIPPED", "lines": [{"sku": "S1", "price": "10"}]},
        {"order_id": "FBA-SHIPPED", "status": "SHIPPED", "fulfilled_by": "AMAZON", "lines": [{"sku": "S1", "price": "10"}]},
    ]})["created"]
    assert [o["fulfilled_by"] for o in made] == ["MERCHANT", "MERCHANT", "AMAZON"]

    def ids(**params) -> list[str]:
        return [o["orderId"] for o in search(sandbox, **params)]

    assert ids() == ["MFN-UNSHIPPED", "MFN-SHIPPED", "FBA-SHIPPED"]
    assert ids(fulfilledBy="MERCHANT") == ["MFN-UNSHIPPED", "MFN-SHIPPED"]
    assert ids(fulfilledBy="AMAZON") == ["FBA-SHIPPED"]
    assert ids(fulfilledBy="MERCHANT,AMAZON", fulfillmentStatuses="SHIPPED") == ["MFN-SHIPPED", "FBA-SHIPPED"]
    shipped = {o["orderId"]: o for o in search(sandbox, includedData="FULFILLMENT")}
    assert shipped["FBA-SHIPPED"]["fulfillment"] == {"fulfillmentStatus": "SHIPPED", "fulfilledBy": "AMAZON"}
    assert shipped["MFN-SHIPPED"]["orderItems"][0]["fulfillment"] == {"quantityFulfilled": 1, "quantityUnfulfilled": 0}


def test_a_buyer_cancellation_request_is_a_request_without_an_execution_until_someone_cancels(sandbox, connect):
    connect(order_lag_s=0)
    [order] = steer(sandbox, "orders", {"orders": [{"lines": [{"sku": "S1", "price": "10"}, {"sku": "S2", "price": "20"}],
                                                    "created": time.time() - 600}]})["created"]
    [before] = search(sandbox)
    second = order["lines"][1]["line_id"]
    answer = steer(sandbox, "cancellation-requests", {"requests": [{"order_id": order["order_id"], "line_ids": [second],
                                                                    "reason": "Ordered by mistake"}]})
    assert answer["requested"] == [{"order_id": order["order_id"], "line_ids": [second]}]

    [asked] = search(sandbox, includedData="CANCELLATION,FULFILLMENT")
    assert asked["lastUpdatedTime"] > before["lastUpdatedTime"]  # asking is an update
    assert asked["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
    assert "cancellation" not in asked["orderItems"][0]
    assert asked["orderItems"][1]["cancellation"] == {"cancellationRequest": {"requester": "BUYER",
                                                                              "cancelReason": "Ordered by mistake"}}
    steer(sandbox, "cancellations", {"cancellations": [{"order_id": order["order_id"], "line_ids": [second],
                                                        "type": "seller_cancellation", "reason": "Buyer asked"}]})
    [done] = search(sandbox, includedData="CANCELLATION")
    assert done["orderItems"][1]["cancellation"] == {
        "cancellationRequest": {"requester": "BUYER", "cancelReason": "Ordered by mistake"},
        "cancellationExecution": {"cancelledBy": "MERCHANT", "cancelReason": "Buyer asked"}}


def test_only_the_orders_job_exists(connect, gate):
    with pytest.raises(ValueError, match="orders"):
        next(connect().pull("cancellations", PullWindow(now(), now()), None, gate))
