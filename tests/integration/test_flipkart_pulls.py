"""Flipkart order and cancellation pulls against the real sandbox server (in a thread of the test
process): Order Management v3 shipment search, its paging and the shipment details."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests

from sandbox.app import ChannelBehaviour
from wheel.domain import Address, CancelledLine, OrderLine, Payment
from wheel.marketplaces.base import ChannelConfig, HttpConfig, OrderPage, PullCapabilities, PullWindow
from wheel.marketplaces.errors import PermanentError, TransientError
from wheel.marketplaces.flipkart import FlipkartAdapter, make_adapter, orders
from wheel.marketplaces.flipkart.client import FlipkartClient

APP_ID, APP_SECRET = "app-uf", "secret-uf-0123456789"
HTTP = HttpConfig(2, 10)
DAY = 24 * 3600
TYPES = {"buyer_cancellation": "buyerCancellation", "seller_cancellation": "sellerCancellation",
         "marketplace_cancellation": "marketplaceCancellation"}


@pytest.fixture
def channel(sandbox, secrets):
    sandbox.state.channels["UF"] = ChannelBehaviour(marketplace="flipkart", client_id=APP_ID, token=APP_SECRET,
                                                    quota_scale=1000)
    (secrets.secrets_dir / "flipkart-uf").write_text(json.dumps({"app_id": APP_ID, "app_secret": APP_SECRET}))
    return ChannelConfig(id="UF", marketplace="flipkart", base_url=f"{sandbox.base_url}/flipkart",
                         credentials_ref="flipkart-uf")


@pytest.fixture
def adapter(channel, secrets) -> FlipkartAdapter:
    return make_adapter(channel, HTTP, secrets)


def window(before_s: float = 3600, after_s: float = 60) -> PullWindow:
    now = datetime.now(timezone.utc)
    return PullWindow(now - timedelta(seconds=before_s), now + timedelta(seconds=after_s))


def create(sandbox, **body) -> list[dict]:
    response = requests.post(f"{sandbox.base_url}/_sandbox/orders", json={"channel": "UF", **body}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["created"]


def cancel(sandbox, cancellations: list[dict]) -> list[dict]:
    response = requests.post(f"{sandbox.base_url}/_sandbox/cancellations",
                             json={"channel": "UF", "cancellations": cancellations}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["cancelled"]


def operations(sandbox) -> list[str]:
    return [c.operation for c in sandbox.state.calls if c.operation != "token"]


def address(sandbox_address: dict) -> Address:
    return Address(**sandbox_address)


# -- orders -----------------------------------------------------------------------------------


def test_pull_capabilities():
    assert FlipkartAdapter.pull_capabilities == PullCapabilities(jobs=("orders", "cancellations"),
                                                                 settle_lag_s=0, overlap_s=600)


def test_65_orders_come_back_in_4_pages_with_lines_totals_and_addresses(sandbox, adapter, gate):
    made = create(sandbox, count=65, lines_per_order=2, seed=7)
    pages = list(adapter.pull("orders", window(), None, gate))

    assert [len(p.orders) for p in pages] == [20, 20, 20, 5]
    assert [p.cursor is None for p in pages] == [False, False, False, True]
    assert all(p.cursor["next"].startswith("/v3/shipments/filter?next_token=") for p in pages[:3])
    assert all(p.failures == [] and p.cancellations == [] for p in pages)
    assert [p.calls for p in pages] == [2, 2, 2, 2]
    pulled = [o for p in pages for o in p.orders]
    # In orderDate order, each once.
    assert [o.order_id for o in pulled] == [m["order_id"] for m in made]
    for order, expected in zip(pulled, made):
        assert order.channel_id == "UF"
        assert order.lines == tuple(OrderLine(line["line_id"], line["sku"], line["quantity"], Decimal(line["price"]))
                                    for line in expected["lines"])
        assert len(order.lines) == 2
        assert order.payments == (Payment(Decimal(expected["total"]), expected["order_id"]),)
        assert order.ship_to == address(expected["ship_to"]) and order.bill_to == address(expected["bill_to"])
    raw = pages[0].raw[made[0]["order_id"]]
    assert raw["shipmentId"] == made[0]["shipment_id"]
    assert raw["orderItems"][0]["priceComponents"]["totalPrice"] == str(Decimal(made[0]["lines"][0]["price"]))
    assert json.loads(json.dumps(raw)) == raw

    searches = [c for c in sandbox.state.calls if c.operation == "searchShipments"]
    assert searches[0].method == "POST" and searches[0].body["filter"]["type"] == "preDispatch"
    assert searches[0].body["pagination"] == {"pageSize": 20}
    assert [c.method for c in searches[1:]] == ["GET"] * 3
    assert [len(c.body["shipment_ids"]) for c in sandbox.state.calls if c.operation == "getShipments"] == [20, 20, 20, 5]
    assert gate.acquired == operations(sandbox) == ["searchShipments", "getShipments"] * 4


@pytest.mark.parametrize("pincode_key", ["pinCode", "pincode"])
def test_an_address_with_pinCode_or_pincode_maps_and_its_landmark_joins_line_2(sandbox, adapter, gate, pincode_key):
    sandbox.state.channels["UF"].options = {"address_pincode_key": pincode_key}
    ship_to = {"first_name": "Meera", "last_name": "Das", "line1": "Plot 1", "line2": "Anna Salai", "city": "Chennai",
               "state": "TamilNadu", "zip_code": "600002"}
    made = create(sandbox, orders=[{"lines": [{"sku": "S1", "price": "10"}], "ship_to": ship_to,
                                    "extra": {"landmark": "Opposite the bus depot"}}])
    (page,) = adapter.pull("orders", window(), None, gate)
    assert page.failures == []
    (order,) = page.orders
    assert order.order_id == made[0]["order_id"]
    assert order.ship_to == Address("Meera", "Das", "Plot 1", "Anna Salai, Opposite the bus depot", "Chennai",
                                    "TamilNadu", "600002")
    assert order.bill_to == Address("Meera", "Das", "Plot 1", "Anna Salai", "Chennai", "TamilNadu", "600002")


def steer(sandbox, shipment_id: str, **attributes) -> None:
    response = requests.patch(f"{sandbox.base_url}/flipkart/_sandbox/shipments/UF/{shipment_id}", json=attributes,
                              timeout=5)
    assert response.status_code == 200, response.text


def pulled(adapter, gate, pull_window: PullWindow | None = None) -> list[str]:
    return [o.order_id for p in adapter.pull("orders", pull_window or window(), None, gate) for o in p.orders]


def test_the_orders_pull_sweeps_approved_shipments_due_from_7_days_back_to_2_days_ahead(sandbox, adapter, gate):
    now = time.time()
    made = create(sandbox, orders=[{"lines": [{"sku": f"S{n}", "price": "10"}], "created": now - 9 * DAY,
                                    "extra": {"dispatch_after": now + offset}}
                                   for n, offset in enumerate((-8 * DAY, -6 * DAY, 0, DAY + 23 * 3600, 3 * DAY))])
    # A window of the last 10 minutes: the sweep does not depend on it.
    assert pulled(adapter, gate, window(600)) == [m["order_id"] for m in made[1:4]]
    (search,) = [c.body for c in sandbox.state.calls if c.operation == "searchShipments"]
    assert search["filter"]["type"] == "preDispatch" and search["filter"]["states"] == ["APPROVED"]
    assert set(search["filter"]) == {"type", "states", "dispatchAfterDate"}


def test_a_shipment_approved_long_after_its_order_date_is_pulled_once_approved(sandbox, adapter, gate):
    now = time.time()
    (late,) = create(sandbox, orders=[{"lines": [{"sku": "S1", "price": "10"}], "created": now - 2 * 3600,
                                       "extra": {"approved_at": now + DAY}}])
    assert pulled(adapter, gate, window(600)) == []
    steer(sandbox, late["shipment_id"], approved_at=time.time())
    # The next run's window starts 10 minutes before the last one ended, long after the orderDate.
    assert pulled(adapter, gate, window(600)) == [late["order_id"]]


def test_a_held_shipment_is_not_imported_until_released_even_when_flipkart_serves_it(sandbox, adapter, gate):
    sandbox.state.channels["UF"].options = {"held_in_search": True}
    held, free = create(sandbox, orders=[{"lines": [{"sku": "S1", "price": "10"}], "extra": {"hold": True}},
                                         {"lines": [{"sku": "S2", "price": "20"}]}])
    (page,) = adapter.pull("orders", window(600), None, gate)
    assert [o.order_id for o in page.orders] == [free["order_id"]] and page.failures == []
    steer(sandbox, held["shipment_id"], hold=False)
    assert pulled(adapter, gate, window(600)) == [held["order_id"], free["order_id"]]


def test_a_shipment_due_more_than_2_days_ahead_is_pulled_once_it_is_due_within_2_days(sandbox, adapter, gate):
    now = time.time()
    (ahead,) = create(sandbox, orders=[{"lines": [{"sku": "S1", "price": "10"}],
                                        "extra": {"dispatch_after": now + 5 * DAY}}])
    assert pulled(adapter, gate) == []
    steer(sandbox, ahead["shipment_id"], dispatch_after=now + DAY)  # as time passes
    assert pulled(adapter, gate) == [ahead["order_id"]]


def test_an_order_whose_items_are_all_cancelled_is_not_a_new_order_and_a_cancelled_item_is_no_line(sandbox, adapter, gate):
    made = create(sandbox, count=3, lines_per_order=2, seed=1)
    cancel(sandbox, [{"order_id": made[0]["order_id"]},
                     {"order_id": made[1]["order_id"], "line_ids": [made[1]["lines"][0]["line_id"]]}])
    (page,) = adapter.pull("orders", window(), None, gate)
    assert [o.order_id for o in page.orders] == [made[1]["order_id"], made[2]["order_id"]]
    # Only the item still to be sent: the OMS never gets the cancelled one.
    live = made[1]["lines"][1]
    assert page.orders[0].lines == (OrderLine(live["line_id"], live["sku"], live["quantity"], Decimal(live["price"])),)
    assert page.orders[0].payments == (Payment(Decimal(live["price"]), made[1]["order_id"]),)
    assert page.raw[made[1]["order_id"]]["orderItems"][0]["status"] == "CANCELLED"


def test_resuming_after_the_first_page_returns_the_rest_only(sandbox, adapter, gate):
    made = create(sandbox, count=45, seed=3)
    pull_window = window()
    first = next(adapter.pull("orders", pull_window, None, gate))
    rest = list(adapter.pull("orders", pull_window, first.cursor, gate))
    assert [len(p.orders) for p in rest] == [20, 5]
    assert [o.order_id for o in first.orders] + [o.order_id for p in rest for o in p.orders] == [m["order_id"] for m in made]
    # The resumed pull went on from the cursor: no first search again.
    assert [c.method for c in sandbox.state.calls if c.operation == "searchShipments"] == ["POST", "GET", "GET"]


def test_details_are_fetched_in_chunks_of_at_most_25_ids(sandbox, adapter, gate, monkeypatch):
    create(sandbox, count=20, seed=4)
    monkeypatch.setattr(orders, "MAX_DETAILS", 7)
    (page,) = adapter.pull("orders", window(), None, gate)
    assert len(page.orders) == 20 and page.calls == 4
    assert [len(c.body["shipment_ids"]) for c in sandbox.state.calls if c.operation == "getShipments"] == [7, 7, 6]


def test_the_sandbox_and_the_client_refuse_more_than_25_shipment_ids(sandbox, channel, adapter, gate):
    made = create(sandbox, count=26, seed=5)
    ids = [m["shipment_id"] for m in made]
    client = FlipkartClient(channel.base_url, APP_ID, APP_SECRET, HTTP)
    assert len(client.get_shipments(ids[:25], gate)["shipments"]) == 25
    with pytest.raises(ValueError):
        client.get_shipments(ids, gate)
    token = requests.get(f"{channel.base_url}/oauth-service/oauth/token", auth=(APP_ID, APP_SECRET), timeout=5,
                         params={"grant_type": "client_credentials", "scope": "Seller_Api"}).json()["access_token"]
    response = requests.get(f"{channel.base_url}/sellers/v3/shipments/{','.join(ids)}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 400
    assert "at most 25 shipment ids per call; got 26" in response.text


def test_unmappable_orders_are_kept_apart_with_their_raw_shipment(sandbox, adapter, gate):
    nowhere = {"first_name": "Meera", "last_name": "Das", "line1": "Plot 1", "line2": "", "city": "",
               "state": "Karnataka", "zip_code": "560001"}
    # Straight into the order book: its HTTP answer cannot total a price that is not a number.
    made = [o.order_id for o in sandbox.state.orders.create("UF", explicit=[
        {"lines": [{"sku": "BAD SKU", "price": "10"}]},
        {"lines": [{"sku": "S1", "price": "10"}], "ship_to": nowhere},
        {"lines": [{"sku": "S2", "price": "not-a-price"}]},
        {"lines": [{"sku": "S3", "price": "1299.99", "quantity": 3}]},
    ])]
    (page,) = adapter.pull("orders", window(), None, gate)
    assert [o.order_id for o in page.orders] == [made[3]]
    assert page.orders[0].lines[0].line_total == Decimal("1299.99")
    reasons = {f.order_id: f.reason for f in page.failures}
    assert list(reasons) == made[:3]
    assert "has spaces" in reasons[made[0]]
    assert "the delivery address has no city" in reasons[made[1]]
    assert "totalPrice 'not-a-price' is not a number" in reasons[made[2]]
    assert all(f.kind == "order" and f.raw["shipmentId"] and f.raw["deliveryAddress"] for f in page.failures)
    assert list(page.raw) == [made[3]]


# -- cancellations ----------------------------------------------------------------------------


def test_cancellations_come_back_per_type_with_the_cancelled_lines(sandbox, adapter, gate):
    made = create(sandbox, count=30, lines_per_order=2, seed=11)
    kinds = list(TYPES)
    specs = []
    for n, order in enumerate(made[:15]):
        spec = {"order_id": order["order_id"], "type": kinds[n % 3], "reason": f"reason {n}"}
        if n % 2:  # partial: the first line only
            spec["line_ids"] = [order["lines"][0]["line_id"]]
        specs.append(spec)
    done = {c["order_id"]: c["line_ids"] for c in cancel(sandbox, specs)}

    pages = list(adapter.pull("cancellations", window(), None, gate))
    assert [p.cursor for p in pages] == [{"type_index": 1, "type": "sellerCancellation", "next": None},
                                         {"type_index": 2, "type": "marketplaceCancellation", "next": None}, None]
    for page, kind in zip(pages, kinds):
        expected = [s for s in specs if s["type"] == kind]
        assert [c.order_id for c in page.cancellations] == [s["order_id"] for s in expected]
        for cancellation, spec in zip(page.cancellations, expected):
            order = next(o for o in made if o["order_id"] == spec["order_id"])
            assert cancellation.reason_code == TYPES[kind]
            assert cancellation.reason_text == spec["reason"]
            assert cancellation.whole_order is False
            assert cancellation.lines == tuple(CancelledLine(line["line_id"], line["sku"], line["quantity"])
                                               for line in order["lines"] if line["line_id"] in done[spec["order_id"]])
            assert len(cancellation.lines) == (1 if "line_ids" in spec else 2)
        assert page.orders == [] and page.failures == []
        assert set(page.raw) == {s["order_id"] for s in expected}
    searches = [c.body for c in sandbox.state.calls if c.operation == "searchShipments"]
    assert [b["filter"]["cancellationType"] for b in searches] == list(TYPES.values())
    assert gate.acquired == operations(sandbox) == ["searchShipments"] * 3


def test_a_cancellation_outside_the_window_is_not_pulled(sandbox, adapter, gate):
    made = create(sandbox, count=2, seed=12)
    cancel(sandbox, [{"order_id": made[0]["order_id"], "type": "seller_cancellation"}])
    time.sleep(0.05)
    later = datetime.now(timezone.utc)
    cancel(sandbox, [{"order_id": made[1]["order_id"], "type": "seller_cancellation"}])
    pages = list(adapter.pull("cancellations", PullWindow(later, later + timedelta(minutes=1)), None, gate))
    # The start rounds down to the second: anything cancelled earlier in that second may come too.
    pulled = [c.order_id for p in pages for c in p.cancellations]
    assert made[1]["order_id"] in pulled and len(pulled) <= 2
    earlier = list(adapter.pull("cancellations", window(7200, -3600), None, gate))
    assert len(earlier) == 3 and all(p.cancellations == [] for p in earlier)


def test_a_cancellations_pull_resumes_within_a_type_and_then_goes_on_to_the_next(sandbox, adapter, gate):
    made = create(sandbox, count=26, seed=13)
    cancel(sandbox, [{"order_id": o["order_id"], "type": "buyer_cancellation"} for o in made[:25]]
           + [{"order_id": made[25]["order_id"], "type": "marketplace_cancellation"}])
    pull_window = window()
    first = next(adapter.pull("cancellations", pull_window, None, gate))
    assert len(first.cancellations) == 20
    assert first.cursor["type_index"] == 0 and first.cursor["next"].startswith("/v3/shipments/filter?next_token=")
    rest = list(adapter.pull("cancellations", pull_window, first.cursor, gate))
    assert [[c.order_id for c in p.cancellations] for p in rest] == [
        [o["order_id"] for o in made[20:25]], [], [made[25]["order_id"]]]
    assert [c.reason_code for p in rest for c in p.cancellations] == ["buyerCancellation"] * 5 + ["marketplaceCancellation"]
    # A cursor at the start of a type begins with that type's first search.
    assert rest[1].cursor == {"type_index": 2, "type": "marketplaceCancellation", "next": None}
    (last,) = adapter.pull("cancellations", pull_window, rest[1].cursor, gate)
    assert [c.order_id for c in last.cancellations] == [made[25]["order_id"]]
    assert sandbox.state.calls[-1].method == "POST"
    assert sandbox.state.calls[-1].body["filter"]["cancellationType"] == "marketplaceCancellation"


@pytest.mark.parametrize("cursor", [{"type_index": 3, "next": None}, {"type_index": 0, "type": "sellerCancellation"},
                                    {"type_index": 0, "next": 5}, {"next": None}])
def test_an_unreadable_cancellations_cursor_is_a_permanent_error(adapter, gate, cursor):
    with pytest.raises(PermanentError):
        next(adapter.pull("cancellations", window(), cursor, gate))


def test_an_unknown_job_is_a_permanent_error(adapter, gate):
    with pytest.raises(PermanentError):
        adapter.pull("returns", window(), None, gate)


# -- the sandbox's rules, tokens and errors ------------------------------------------------------


@pytest.mark.parametrize("body, says", [
    ({"filter": {"type": "preDispatch", "states": ["APPROVED"]}, "pagination": {"pageSize": 21}},
     "pageSize must be a whole number from 1 to 20"),
    ({"filter": {"type": "cancelled", "states": ["CANCELLED"]}}, "cancellationType is mandatory"),
    ({"filter": {"type": "cancelled", "states": ["CANCELLED"], "cancellationType": "courierCancellation"}},
     "cancellationType must be one of"),
    ({"filter": {"type": "preDispatch"}}, "filter.states must be"),
    ({"filter": {"type": "preDispatch", "states": ["APPROVED"], "orderDate": {"from": "2026-08-01T00:00:00"}}},
     "with an offset"),
])
def test_the_sandbox_refuses_bad_searches_as_permanent_errors(sandbox, channel, gate, body, says):
    client = FlipkartClient(channel.base_url, APP_ID, APP_SECRET, HTTP)
    with pytest.raises(PermanentError) as caught:
        client.search_shipments(body, gate)
    assert (caught.value.status, caught.value.code) == (400, "4000")
    assert says in str(caught.value)


def test_a_forged_next_token_is_refused(sandbox, channel, gate):
    client = FlipkartClient(channel.base_url, APP_ID, APP_SECRET, HTTP)
    with pytest.raises(PermanentError) as caught:
        client.next_shipments("/v3/shipments/filter?next_token=bm90LWpzb24", gate)
    assert "next_token is not one this API issued" in str(caught.value)


def test_an_expired_token_is_renewed_once_during_a_pull(sandbox, adapter, gate):
    create(sandbox, count=3, seed=21)
    list(adapter.pull("orders", window(), None, gate))
    with sandbox.state.lock:
        sandbox.state.tokens = {token: (ch, 0.0) for token, (ch, _) in sandbox.state.tokens.items()}
    (page,) = adapter.pull("orders", window(), None, gate)
    assert len(page.orders) == 3
    searches = [c.status for c in sandbox.state.calls if c.operation == "searchShipments"]
    assert searches == [200, 401, 200]
    assert len([c for c in sandbox.state.calls if c.operation == "token"]) == 2


def test_throttling_is_a_transient_error(sandbox, adapter, gate):
    sandbox.state.channels["UF"].quotas = {"searchShipments": [0.01, 1]}
    list(adapter.pull("orders", window(), None, gate))
    with pytest.raises(TransientError) as caught:
        list(adapter.pull("orders", window(), None, gate))
    assert caught.value.status == 429 and caught.value.retry_after > 1


def test_pages_are_order_pages(sandbox, adapter, gate):
    (page,) = adapter.pull("orders", window(), None, gate)
    assert isinstance(page, OrderPage) and page.orders == [] and page.cursor is None and page.calls == 1
