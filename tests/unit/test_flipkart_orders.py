"""Flipkart's pure order mapping: queries, shipments to orders and cancellations, refusals."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from wheel.domain import Address, Cancellation, CancelledLine, Order, OrderLine, Payment
from wheel.marketplaces.base import PullWindow
from wheel.marketplaces.errors import PermanentError
from wheel.marketplaces.flipkart import orders

ADDRESS = {"firstName": "Priya", "lastName": "Iyer", "addressLine1": "Plot No 12", "addressLine2": "Street 4",
           "city": "Chennai", "state": "TamilNadu", "pincode": "600001"}
BILLING = {**ADDRESS, "firstName": "Arjun", "city": "Mumbai", "state": "Maharashtra", "pincode": 400001}


def item(item_id: str, sku: str = "SKU1", quantity: int = 1, total: object = Decimal("499.50"), *,
         order_id: str = "OD1", status: str = "APPROVED", **extra) -> dict:
    return {"orderItemId": item_id, "orderId": order_id, "sku": sku, "quantity": quantity, "status": status,
            "priceComponents": {"sellingPrice": total, "totalPrice": total}, **extra}


def shipment(shipment_id: str = "SH1", *items: dict) -> dict:
    return {"shipmentId": shipment_id, "orderItems": list(items) or [item("I1")]}


def details(shipment_id: str = "SH1", delivery: dict | None = ADDRESS, billing: dict | None = BILLING) -> dict:
    return {shipment_id: {"shipmentId": shipment_id, "deliveryAddress": delivery, "billingAddress": billing}}


# -- queries ----------------------------------------------------------------------------------


def test_orders_query_sweeps_approved_shipments_due_from_7_days_before_the_window_end_to_2_days_after():
    window = PullWindow(datetime(2026, 8, 1, 0, 0, 5, 700_000, tzinfo=timezone.utc),
                        datetime(2026, 8, 10, 1, 0, 0, 1, tzinfo=timezone.utc))
    assert orders.orders_query(window) == {
        "filter": {"type": "preDispatch", "states": ["APPROVED"],
                   # The start rounds down and the end up: nothing in the range falls outside.
                   "dispatchAfterDate": {"from": "2026-08-03T06:30:00+05:30", "to": "2026-08-12T06:30:01+05:30"}},
        "pagination": {"pageSize": 20}, "sort": {"field": "orderDate", "order": "asc"},
    }


def test_cancellations_query_names_one_type():
    ist = timezone(timedelta(hours=5, minutes=30))
    window = PullWindow(datetime(2026, 8, 1, tzinfo=ist), datetime(2026, 8, 2, tzinfo=ist))
    query = orders.cancellations_query(window, "sellerCancellation")
    assert query["filter"] == {"type": "cancelled", "states": ["CANCELLED"], "cancellationType": "sellerCancellation",
                               "cancellationDate": {"from": "2026-08-01T00:00:00+05:30",
                                                    "to": "2026-08-02T00:00:00+05:30"}}
    assert query["pagination"] == {"pageSize": 20}


def test_a_naive_window_is_refused():
    with pytest.raises(ValueError):
        orders.orders_query(PullWindow(datetime(2026, 8, 1), datetime(2026, 8, 2)))


@pytest.mark.parametrize("next_url, path", [
    ("/v3/shipments/filter?next_token=abc", "/sellers/v3/shipments/filter?next_token=abc"),
    ("/sellers/v3/shipments/filter?next_token=abc", "/sellers/v3/shipments/filter?next_token=abc"),
    ("https://api.flipkart.net/sellers/v3/shipments/filter?next_token=abc", "/sellers/v3/shipments/filter?next_token=abc"),
])
def test_next_page_url_is_taken_relative_to_sellers(next_url, path):
    assert orders.page_path(next_url, "https://api.flipkart.net/") == path


@pytest.mark.parametrize("next_url", ["https://elsewhere.example/v3/x", "//elsewhere.example/x", "v3/x"])
def test_a_next_page_url_off_the_api_is_refused(next_url):
    with pytest.raises(PermanentError):
        orders.page_path(next_url, "https://api.flipkart.net")


def test_search_answer_pages():
    assert orders.search_answer({"hasMore": False, "shipments": [{"shipmentId": "A"}]}) == ([{"shipmentId": "A"}], None)
    assert orders.search_answer({"hasMore": True, "nextPageUrl": "/v3/n", "shipments": []}) == ([], "/v3/n")
    with pytest.raises(PermanentError):
        orders.search_answer({"hasMore": True, "shipments": []})
    with pytest.raises(PermanentError):
        orders.search_answer(None)


# -- orders -----------------------------------------------------------------------------------


def test_a_shipment_maps_to_an_order_with_every_item_still_due_and_both_addresses():
    found = shipment("SH1", item("I1", "SKU1", 2, Decimal("999.00")), item("I3", "SKU3", 1, Decimal("1.00")),
                     item("I2", "SKU2", 1, Decimal("0.50"), status="CANCELLED"))
    # I3 was cancelled after the search: the details, read later, say so.
    detail = details()
    detail["SH1"]["orderItems"] = [item("I1"), item("I3", status="CANCELLED"), item("I2", status="CANCELLED")]
    page = orders.orders_page("FK", [found], detail)
    assert page.failures == []
    assert page.orders == [Order(
        channel_id="FK", order_id="OD1",
        bill_to=Address("Arjun", "Iyer", "Plot No 12", "Street 4", "Mumbai", "Maharashtra", "400001"),
        ship_to=Address("Priya", "Iyer", "Plot No 12", "Street 4", "Chennai", "TamilNadu", "600001"),
        payments=(Payment(Decimal("999.00"), "OD1"),),
        lines=(OrderLine("I1", "SKU1", 2, Decimal("999.00")),),
    )]
    raw = page.raw["OD1"]
    assert json.loads(json.dumps(raw)) == raw  # JSON-able
    assert raw["orderItems"][0]["priceComponents"]["totalPrice"] == "999.00"
    assert raw["deliveryAddress"]["city"] == "Chennai"


def test_shipments_of_one_order_on_a_page_become_one_order():
    first, second = shipment("SH1", item("I1")), shipment("SH2", item("I2", total=Decimal("100")))
    page = orders.orders_page("FK", [first, second], {**details("SH1"), **details("SH2")})
    (order,) = page.orders
    assert [line.line_id for line in order.lines] == ["I1", "I2"]
    assert order.payments == (Payment(Decimal("599.50"), "OD1"),)
    assert [s["shipmentId"] for s in page.raw["OD1"]] == ["SH1", "SH2"]


def test_the_sdks_pinCode_is_read_and_a_landmark_joins_line_2():
    sdk = {**{k: v for k, v in ADDRESS.items() if k != "pincode"}, "pinCode": "600002", "landmark": "Near the temple",
           "stateCode": "TN", "contactNumber": None}
    page = orders.orders_page("FK", [shipment()], details(delivery=sdk, billing={**sdk, "addressLine2": " "}))
    assert page.failures == []
    assert page.orders[0].ship_to == Address("Priya", "Iyer", "Plot No 12", "Street 4, Near the temple", "Chennai",
                                             "TamilNadu", "600002")
    assert page.orders[0].bill_to.line2 == "Near the temple"


def test_held_or_wholly_cancelled_shipments_make_no_order_and_no_failure():
    held = {**shipment("SH1", item("I1")), "hold": True}
    cancelled = shipment("SH2", item("I2", order_id="OD2", status="CANCELLED"))
    page = orders.orders_page("FK", [held, cancelled], {**details("SH1"), **details("SH2")})
    assert (page.orders, page.failures, page.raw) == ([], [], {})


def test_a_held_shipment_of_an_order_is_left_for_later_and_the_rest_imported():
    held = {**shipment("SH1", item("I1")), "hold": True}
    free = {**shipment("SH2", item("I2", total=Decimal("100"))), "hold": False}
    page = orders.orders_page("FK", [held, free], {**details("SH1"), **details("SH2")})
    (order,) = page.orders
    assert [line.line_id for line in order.lines] == ["I2"]


def test_blank_last_name_and_second_line_are_allowed():
    page = orders.orders_page("FK", [shipment()], details(delivery={**ADDRESS, "lastName": None, "addressLine2": ""}))
    assert page.orders[0].ship_to.last_name == "" and page.orders[0].ship_to.line2 == ""


@pytest.mark.parametrize("found, detail, says", [
    (shipment(), details(delivery={**ADDRESS, "city": " "}), "the delivery address has no city"),
    (shipment(), details(billing={k: v for k, v in BILLING.items() if k != "pincode"}), "the billing address has no pinCode"),
    (shipment(), {}, "shipment SH1 has no delivery address"),
    (shipment("SH1", item("I1", "BAD SKU")), details(), "SKU 'BAD SKU' has spaces"),
    (shipment("SH1", item("I1", None)), details(), "the line has no SKU"),
    (shipment("SH1", item("I1", total="abc")), details(), "totalPrice 'abc' is not a number"),
    (shipment("SH1", item("I1", total=Decimal("-1"))), details(), "is not a price"),
    (shipment("SH1", item("I1", total=1.5)), details(), "is not a number"),  # a float: never taken as money
    (shipment("SH1", item("I1", quantity=0)), details(), "quantity 0"),
    (shipment("SH1", item("I1"), item("I2", order_id="OD2")), details(), "holds items of orders OD1, OD2"),
    ({"shipmentId": "SH1", "orderItems": []}, details(), "has no order items"),
])
def test_what_cannot_be_an_oms_order_is_unmappable_with_its_raw_shipment(found, detail, says):
    page = orders.orders_page("FK", [found, shipment("SH9", item("I9", order_id="OD9"))], {**detail, **details("SH9")})
    assert [o.order_id for o in page.orders] == ["OD9"]
    (failure,) = page.failures
    assert (failure.channel_id, failure.kind) == ("FK", "order")
    assert says in failure.reason
    assert failure.raw["shipmentId"] == "SH1"
    assert json.loads(json.dumps(failure.raw)) == failure.raw
    assert list(page.raw) == ["OD9"]


def test_an_unmappable_shipment_without_an_order_id_is_named_by_its_shipment():
    page = orders.orders_page("FK", [shipment("SH1", item("I1", order_id=""))], details())
    assert page.failures[0].order_id == "shipment:SH1"
    assert "has no orderId" in page.failures[0].reason


# -- cancellations ----------------------------------------------------------------------------


def cancelled(item_id: str, sku: str = "SKU1", quantity: int = 1, **extra) -> dict:
    return item(item_id, sku, quantity, status="CANCELLED", cancellationReason="Buyer changed their mind",
                cancellationDate="2026-08-01T10:00:00.000+05:30", cancellationGroupId="CG1", **extra)


def test_a_cancelled_shipment_gives_its_cancelled_items_only():
    found = shipment("SH1", cancelled("I1", "SKU1", 2), item("I2", "SKU2"))
    page = orders.cancellations_page("FK", [found], "buyerCancellation")
    assert page.cancellations == [Cancellation("FK", "OD1", (CancelledLine("I1", "SKU1", 2),), "buyerCancellation",
                                               "Buyer changed their mind", whole_order=False)]
    assert page.raw["OD1"]["shipmentId"] == "SH1"
    assert page.orders == [] and page.failures == []


def test_the_sub_reason_follows_the_reason():
    found = shipment("SH1", cancelled("I1", cancellationSubReason="found_cheaper"))
    (cancellation,) = orders.cancellations_page("FK", [found], "buyerCancellation").cancellations
    assert cancellation.reason_text == "Buyer changed their mind / found_cheaper"
    assert orders.reason_text({"cancellationSubReason": "only_sub"}) == "only_sub"
    assert orders.reason_text({}) == ""


@pytest.mark.parametrize("found, says", [
    (shipment("SH1", item("I1")), "has no CANCELLED item"),
    (shipment("SH1", cancelled("I1", "BAD SKU")), "has spaces"),
    (shipment("SH1", cancelled("I1", quantity=-1)), "quantity -1"),
])
def test_a_cancellation_that_cannot_be_mapped_is_unmappable(found, says):
    page = orders.cancellations_page("FK", [found, shipment("SH2", cancelled("I2", order_id="OD2"))], "sellerCancellation")
    assert [c.order_id for c in page.cancellations] == ["OD2"]
    (failure,) = page.failures
    assert (failure.order_id, failure.kind) == ("OD1", "cancellation")
    assert says in failure.reason
    assert failure.raw["shipmentId"] == "SH1"


def test_jsonable_turns_decimals_into_their_exact_text():
    assert orders.jsonable({"a": [Decimal("1.10"), 2, None, {"b": Decimal("1E+2")}]}) == {"a": ["1.10", 2, None, {"b": "1E+2"}]}
