"""Pure Amazon order mapping (Orders API v2026-01-01 searchOrders): query, orders, cancellations, failures.

The sample orders here are shaped per orders_2026-01-01.json (test_spapi_models.py validates them
against the model's Order definition).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from wheel.domain import Address, Cancellation, CancellationRequest, CancelledLine, Order, OrderLine, Payment
from wheel.marketplaces.amazon import orders
from wheel.marketplaces.base import PullWindow

INDIA = "A21TJRUUN4KGV"


def money(amount: str, currency: str = "INR") -> dict:
    return {"amount": amount, "currencyCode": currency}


def item(item_id: str, sku: str, quantity: int, unit: str, cancellation: dict | None = None) -> dict:
    out = {"orderItemId": item_id, "quantityOrdered": quantity,
           "product": {"asin": "B0TEST0001", "sellerSku": sku, "price": {"unitPrice": money(unit)}}}
    if cancellation is not None:
        out["cancellation"] = cancellation
    return out


def amazon_order(order_id: str, status: str, items: list[dict], *, total: str = "0") -> dict:
    return {
        "orderId": order_id, "createdTime": "2026-01-05T10:00:00Z", "lastUpdatedTime": "2026-01-05T11:00:00Z",
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": INDIA, "marketplaceName": "Amazon.in"},
        "fulfillment": {"fulfillmentStatus": status, "fulfilledBy": "MERCHANT"},
        "orderItems": items,
        "recipient": {"deliveryAddress": {
            "name": "Tamizhvendan  Raja Sembiyan", "addressLine1": "Plot No 12", "addressLine2": "Anna Salai",
            "addressLine3": "Near the bus stand", "city": "Chennai", "stateOrRegion": "TamilNadu",
            "postalCode": "600001", "countryCode": "IN", "addressType": "RESIDENTIAL"}},
        "proceeds": {"grandTotal": money(total)},
    }


BY_BUYER = {"cancellationRequest": {"requester": "BUYER", "cancelReason": "Changed my mind"},
            "cancellationExecution": {"cancelledBy": "BUYER", "cancelReason": "Changed my mind"}}

ORDER = amazon_order("403-1111111-0000001", "UNSHIPPED", [
    item("11", "KURTA-RED-42", 2, "449.995"),  # 899.99 for two
    item("12", "DUPATTA-1", 1, "250"),
], total="1149.99")
PARTIAL = amazon_order("403-1111111-0000002", "UNSHIPPED", [
    item("21", "KURTA-RED-42", 1, "450.00", cancellation=BY_BUYER),
    item("22", "DUPATTA-1", 3, "100.00"),
    # A request alone is the buyer asking, not a cancellation.
    item("23", "SAREE-9", 1, "999.00", cancellation={"cancellationRequest": {"requester": "BUYER",
                                                                             "cancelReason": "Late"}}),
], total="1749.00")
CANCELLED = {
    **{k: v for k, v in amazon_order("403-1111111-0000003", "CANCELLED", []).items() if k not in ("recipient", "proceeds")},
    "orderItems": [
        item("31", "KURTA-RED-42", 1, "450.00", cancellation={"cancellationExecution": {
            "cancelledBy": "MERCHANT", "cancelReason": "Out of stock"}}),
        item("32", "DUPATTA-1", 1, "250.00"),
    ],
}
SAMPLES = {"order": ORDER, "partial": PARTIAL, "cancelled": CANCELLED}

CHENNAI = Address(first_name="Tamizhvendan Raja", last_name="Sembiyan", line1="Plot No 12",
                  line2="Anna Salai, Near the bus stand", city="Chennai", state="TamilNadu", zip_code="600001")


def mapped(raw: dict) -> orders.Mapped:
    # Through JSON, read as the client reads it (numbers as Decimal).
    return orders.map_order("UA", json.loads(json.dumps(raw), parse_float=Decimal), "INR")


# -- the query ------------------------------------------------------------------------------------


def test_search_query_pulls_the_window_by_last_update_with_every_data_set_needed():
    start = datetime(2026, 1, 5, 10, 0, 0, 900_000, tzinfo=timezone.utc)
    window = PullWindow(start, datetime(2026, 1, 5, 16, 30, 59, 999_000, tzinfo=timezone(timedelta(hours=5, minutes=30))))

    assert orders.search_query(INDIA, window) == {
        "marketplaceIds": INDIA,
        "lastUpdatedAfter": "2026-01-05T10:00:00Z",  # whole seconds, rounded down
        "lastUpdatedBefore": "2026-01-05T11:00:59Z",
        "fulfillmentStatuses": "UNSHIPPED,PARTIALLY_SHIPPED,SHIPPED,CANCELLED",
        # FULFILLMENT carries fulfillment.fulfillmentStatus, which says CANCELLED.
        "includedData": "RECIPIENT,PROCEEDS,CANCELLATION,FULFILLMENT",
        "fulfilledBy": "MERCHANT",  # FBA orders are Amazon's to ship, not the OMS's
        "maxResultsPerPage": 100,
    }
    assert orders.search_query(INDIA, window, "tok")["paginationToken"] == "tok"
    assert orders.search_query(INDIA, window, fulfilled_by=("MERCHANT", "AMAZON"))["fulfilledBy"] == "MERCHANT,AMAZON"


def test_a_window_needs_timezone_aware_times():
    with pytest.raises(ValueError):
        orders.iso(datetime(2026, 1, 5))


def test_next_token_is_read_from_pagination():
    assert orders.next_token({"orders": [], "pagination": {"nextToken": "abc"}}) == "abc"
    assert orders.next_token({"orders": []}) is None
    assert orders.next_token({"orders": [], "pagination": {}}) is None


# -- orders and cancellations ---------------------------------------------------------------------


def test_an_order_maps_with_unit_price_times_quantity_and_the_recipient_as_both_addresses():
    result = mapped(ORDER)

    assert result.order == Order(
        channel_id="UA", order_id="403-1111111-0000001", bill_to=CHENNAI, ship_to=CHENNAI,
        payments=(Payment(Decimal("1149.99"), reference="403-1111111-0000001"),),
        lines=(OrderLine("11", "KURTA-RED-42", 2, Decimal("899.99")), OrderLine("12", "DUPATTA-1", 1, Decimal("250.00"))),
    )
    assert result.cancellation is None and result.failure is None


def test_a_one_word_name_is_the_first_name():
    raw = copy.deepcopy(ORDER)
    raw["recipient"]["deliveryAddress"]["name"] = "Priya"
    ship_to = mapped(raw).order.ship_to
    assert (ship_to.first_name, ship_to.last_name) == ("Priya", "")


def test_a_partly_cancelled_order_is_the_whole_order_plus_a_cancellation_of_the_executed_items():
    result = mapped(PARTIAL)

    assert [(l.line_id, l.quantity, l.line_total) for l in result.order.lines] == [
        ("21", 1, Decimal("450.00")), ("22", 3, Decimal("300.00")), ("23", 1, Decimal("999.00"))]
    assert result.cancellation == Cancellation(
        channel_id="UA", order_id="403-1111111-0000002", lines=(CancelledLine("21", "KURTA-RED-42", 1),),
        reason_code="BUYER", reason_text="Changed my mind", whole_order=False)
    assert result.failure is None


def test_a_cancelled_order_is_only_a_whole_cancellation_of_every_item():
    result = mapped(CANCELLED)

    assert result.order is None and result.failure is None
    assert result.cancellation == Cancellation(
        channel_id="UA", order_id="403-1111111-0000003",
        lines=(CancelledLine("31", "KURTA-RED-42", 1), CancelledLine("32", "DUPATTA-1", 1)),
        reason_code="MERCHANT", reason_text="Out of stock", whole_order=True)


def test_a_partial_cancellation_goes_through_even_when_the_order_itself_cannot_be_mapped():
    raw = copy.deepcopy(PARTIAL)
    del raw["recipient"]
    result = mapped(raw)

    assert result.order is None
    assert (result.failure.kind, result.failure.order_id) == ("order", PARTIAL["orderId"])
    assert "recipient.deliveryAddress" in result.failure.reason
    assert result.cancellation == Cancellation(
        channel_id="UA", order_id=PARTIAL["orderId"], lines=(CancelledLine("21", "KURTA-RED-42", 1),),
        reason_code="BUYER", reason_text="Changed my mind", whole_order=False)


def test_a_cancelled_item_with_quantity_0_and_no_price_is_no_order_line_but_is_cancelled():
    raw = copy.deepcopy(PARTIAL)
    raw["orderItems"][0]["quantityOrdered"] = 0
    del raw["orderItems"][0]["product"]["price"]
    result = mapped(raw)

    assert result.failure is None
    assert [(l.line_id, l.quantity) for l in result.order.lines] == [("22", 3), ("23", 1)]
    assert result.cancellation.lines == (CancelledLine("21", "KURTA-RED-42", 0),)


def test_an_order_whose_every_item_was_cancelled_is_a_whole_cancellation_even_without_its_status():
    raw = copy.deepcopy(CANCELLED)
    del raw["fulfillment"]
    for entry in raw["orderItems"]:
        entry["cancellation"] = {"cancellationExecution": {"cancelledBy": "AMAZON", "cancelReason": "Payment failed"}}
    result = mapped(raw)

    assert result.order is None and result.failure is None
    assert result.cancellation.whole_order and [l.line_id for l in result.cancellation.lines] == ["31", "32"]


def test_a_buyers_cancellation_request_is_reported_as_a_request_not_a_cancellation():
    result = mapped(PARTIAL)

    assert result.request == CancellationRequest(
        channel_id="UA", order_id=PARTIAL["orderId"], lines=(CancelledLine("23", "SAREE-9", 1),),
        requester="BUYER", reason="Late")
    assert [l.line_id for l in result.cancellation.lines] == ["21"]  # the executed one only
    assert mapped(ORDER).request is None and mapped(CANCELLED).request is None


def test_a_cancelled_order_without_cancellation_data_was_cancelled_by_amazon():
    raw = copy.deepcopy(CANCELLED)
    for entry in raw["orderItems"]:
        entry.pop("cancellation", None)
    assert (mapped(raw).cancellation.reason_code, mapped(raw).cancellation.reason_text) == ("AMAZON", "")


def _broken(change) -> dict:
    raw = copy.deepcopy(ORDER)
    change(raw)
    return raw


@pytest.mark.parametrize("raw, reason", [
    (_broken(lambda o: o.pop("recipient")), "recipient.deliveryAddress"),
    (_broken(lambda o: o["recipient"]["deliveryAddress"].pop("postalCode")), "postalCode"),
    (_broken(lambda o: o["recipient"]["deliveryAddress"].update(name="  ")), "recipient name"),
    (_broken(lambda o: o["orderItems"][1]["product"].update(sellerSku="DUPATTA 1")), "spaces"),
    (_broken(lambda o: o["orderItems"][1]["product"].pop("sellerSku")), "no SKU"),
    (_broken(lambda o: o["orderItems"][0].update(quantityOrdered=0)), "quantityOrdered"),
    (_broken(lambda o: o["orderItems"][0]["product"].pop("price")), "unitPrice"),
    (_broken(lambda o: o["orderItems"][0]["product"]["price"].update(unitPrice=money("12,50"))), "not a decimal"),
    (_broken(lambda o: o["orderItems"][0]["product"]["price"].update(unitPrice=money("-1"))), ">= 0"),
    (_broken(lambda o: o["orderItems"][0]["product"]["price"].update(unitPrice=money("NaN"))), ">= 0"),
    (_broken(lambda o: o["proceeds"].update(grandTotal=money("10", "USD"))), "'USD', not INR"),
    (_broken(lambda o: o.pop("proceeds")), "grandTotal"),
    (_broken(lambda o: o.update(orderItems=[])), "orderItems"),
], ids=["no-recipient", "no-postcode", "blank-name", "sku-space", "no-sku", "zero-qty", "no-price", "bad-money",
        "negative", "nan", "currency", "no-proceeds", "no-items"])
def test_an_order_that_cannot_be_an_oms_order_is_unmappable_with_its_raw_form(raw, reason):
    result = mapped(raw)

    assert result.order is None and result.cancellation is None
    assert result.failure.kind == "order" and result.failure.order_id == ORDER["orderId"]
    assert reason in result.failure.reason
    assert result.failure.raw == raw


def test_a_cancellation_that_cannot_be_mapped_is_an_unmappable_cancellation():
    raw = copy.deepcopy(CANCELLED)
    raw["orderItems"][0]["product"]["sellerSku"] = "x" * 41
    result = mapped(raw)
    assert result.cancellation is None
    assert (result.failure.kind, result.failure.order_id) == ("cancellation", CANCELLED["orderId"])
    assert "longer than 40" in result.failure.reason


# -- pages ----------------------------------------------------------------------------------------


def test_a_page_sorts_orders_cancellations_and_failures_and_keeps_every_raw_order_as_json():
    bad = _broken(lambda o: o.update(orderId="403-1111111-0000009", recipient={}))
    pending = {**amazon_order("403-1111111-0000008", "PENDING", [item("81", "S", 1, "1")]), "recipient": {}}
    answer = json.loads(json.dumps({"orders": [ORDER, PARTIAL, CANCELLED, bad, pending]}), parse_float=Decimal)
    answer["orders"][0]["weight"] = Decimal("1.5")  # any number Amazon sends is kept, as text

    page = orders.read_page("UA", answer["orders"], "INR", "next-token")

    assert [o.order_id for o in page.orders] == [ORDER["orderId"], PARTIAL["orderId"]]
    assert [(c.order_id, c.whole_order) for c in page.cancellations] == [(PARTIAL["orderId"], False),
                                                                         (CANCELLED["orderId"], True)]
    assert [f.order_id for f in page.failures] == ["403-1111111-0000009"]
    assert [(r.order_id, [l.line_id for l in r.lines]) for r in page.requests] == [(PARTIAL["orderId"], ["23"])]
    assert list(page.raw) == [ORDER["orderId"], PARTIAL["orderId"], CANCELLED["orderId"], "403-1111111-0000009"]
    assert page.raw[ORDER["orderId"]]["weight"] == "1.5"
    json.dumps(page.raw)
    assert (page.cursor, page.calls) == ({"token": "next-token"}, 1)
    assert orders.read_page("UA", [], "INR", None).cursor is None
