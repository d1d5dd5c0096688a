"""Pure mapping between Flipkart Order Management v3 shipments and domain orders and cancellations
(no I/O).

Flipkart's unit is the shipment: it holds order items of one order, and an order can split across
shipments. Search results carry no addresses; the shipment details do. Numbers are expected parsed
as Decimal (`response.json(parse_float=Decimal)`), so no price ever passes through a float.

New orders are swept, not windowed by orderDate: every run pages through every APPROVED shipment
whose dispatchAfterDate lies from 7 days before the run to 2 days after it, as Unicommerce's
production connector does (github vipingarg7/uniware-flipkart-service,
FlipkartSellerApiService.searchPreDispatchShipmentPost). A shipment approved late (payment or COD
verified, a hold released) has an orderDate that earlier orderDate windows have passed; the sweep
meets it on its next run. An order already stored is neither stored nor sent again (the pull
service upserts by channel and order id), so sweeping the same shipments again is harmless.

What an order is made of: the items still due. A held shipment (`hold: true`, "Flag True or False
for Shipment Verification Process", https://seller.flipkart.com/api-docs/order-api-docs/v3/GetByShipmentIds.html)
is left for later: the seller may not act on it yet (a search without a hold filter does not even
return it), and the sweep meets it again once it is released. A
CANCELLED item (in the search or in the details, read later) is left out: the OMS never gets a
line it must not fulfil, and the pull service sends it no cancellation for a line it never had.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from wheel.domain import Address, Cancellation, CancelledLine, Order, OrderLine, Payment, Unmappable, sku_problem
from wheel.marketplaces.base import OrderPage, PullWindow
from wheel.marketplaces.errors import PermanentError

SEARCH_PATH = "/sellers/v3/shipments/filter"
DETAILS_PATH = "/sellers/v3/shipments/"
# v2's order search documents at most 20 a page; v3's limit is unpublished (third-party clients use 20).
PAGE_SIZE = 20
# Shipment ids per details call.
MAX_DETAILS = 25
# One query per type: the filter takes a single cancellationType, and it is mandatory.
CANCELLATION_TYPES = ("buyerCancellation", "sellerCancellation", "marketplaceCancellation")
IST = timezone(timedelta(hours=5, minutes=30))
# The sweep of new orders: shipments whose dispatchAfterDate is from this long before the run to
# this long after it (Unicommerce's connector: now - 7 days to now + 2 days, states [APPROVED]). One
# due later is met once it comes within 2 days.
SWEEP_BEHIND = timedelta(days=7)
SWEEP_AHEAD = timedelta(days=2)
# Flipkart address field -> domain Address field; a missing or blank required one makes the order unmappable.
ADDRESS_FIELDS = {"firstName": "first_name", "lastName": "last_name", "addressLine1": "line1",
                  "addressLine2": "line2", "city": "city", "state": "state", "pinCode": "zip_code"}
ADDRESS_OPTIONAL = frozenset({"lastName", "addressLine2"})
# Where the postcode may be: pinCode in Flipkart's SDK (github Flipkart/flipkart-seller-api-java-sdk,
# model/Address.java) and in Unicommerce's connector (github vipingarg7/uniware-flipkart-service,
# dto/Address.java); pincode on the older reference page
# (https://seller.flipkart.com/api-docs/order-api-docs/v3/GetShipmentDetails.html).
PINCODE_KEYS = ("pinCode", "pincode")


class Refused(Exception):
    """Why a shipment cannot be mapped."""


# -- requests ---------------------------------------------------------------------------------


def flipkart_time(moment: datetime, *, round_up: bool = False) -> str:
    """An ISO 8601 date-time in IST to the second, as Flipkart's examples write them. A window's end
    is rounded up and its start down, so that nothing in the window falls outside the query."""
    if moment.tzinfo is None:
        raise ValueError("a pull window needs timezone-aware times")
    whole = moment.replace(microsecond=0)
    if round_up and whole != moment:
        whole += timedelta(seconds=1)
    return whole.astimezone(IST).isoformat()


def date_range(window: PullWindow) -> dict[str, str]:
    return {"from": flipkart_time(window.start), "to": flipkart_time(window.end, round_up=True)}


def orders_query(window: PullWindow) -> dict[str, Any]:
    """The sweep around the window's end (the run's now); the window's start plays no part. No
    `hold` filter: "Defaults to False" (https://seller.flipkart.com/api-docs/order-api-docs/v3/PostShipmentSearch.html),
    the SDK's Filter (docs/Filter.md) has none, and to_order leaves out a held shipment either way."""
    end = window.end
    return {"filter": {"type": "preDispatch", "states": ["APPROVED"],
                       "dispatchAfterDate": {"from": flipkart_time(end - SWEEP_BEHIND),
                                             "to": flipkart_time(end + SWEEP_AHEAD, round_up=True)}},
            "pagination": {"pageSize": PAGE_SIZE}, "sort": {"field": "orderDate", "order": "asc"}}


def cancellations_query(window: PullWindow, cancellation_type: str) -> dict[str, Any]:
    return {"filter": {"type": "cancelled", "states": ["CANCELLED"], "cancellationType": cancellation_type,
                       "cancellationDate": date_range(window)},
            "pagination": {"pageSize": PAGE_SIZE}}


def page_path(next_page_url: str, base_url: str) -> str:
    """The path (under the base URL) of a nextPageUrl, which appears to be relative to /sellers."""
    if next_page_url.startswith(base_url.rstrip("/") + "/"):
        next_page_url = next_page_url[len(base_url.rstrip("/")):]
    elif "://" in next_page_url or next_page_url.startswith("//"):
        # The token is never sent to another host.
        raise PermanentError(f"Flipkart's nextPageUrl {next_page_url[:200]!r} points away from its API")
    if not next_page_url.startswith("/"):
        raise PermanentError(f"Flipkart's nextPageUrl {next_page_url[:200]!r} is not a path")
    return next_page_url if next_page_url.startswith("/sellers/") else "/sellers" + next_page_url


# -- answers ----------------------------------------------------------------------------------


def search_answer(answer: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The page's shipments, and the nextPageUrl while Flipkart has more."""
    if not isinstance(answer, dict) or not isinstance(answer.get("shipments", []), list):
        raise PermanentError("Flipkart's shipment search answered without a list of shipments")
    shipments = [s for s in answer.get("shipments") or [] if isinstance(s, dict)]
    if not answer.get("hasMore"):
        return shipments, None
    next_url = answer.get("nextPageUrl")
    if not isinstance(next_url, str) or not next_url:
        raise PermanentError("Flipkart's shipment search says it has more but gives no nextPageUrl")
    return shipments, next_url


def details_answer(answer: Any) -> dict[str, dict[str, Any]]:
    """Shipment details by shipmentId."""
    shipments = answer.get("shipments") if isinstance(answer, dict) else None
    return {str(s["shipmentId"]): s for s in shipments if isinstance(s, dict) and s.get("shipmentId")} \
        if isinstance(shipments, list) else {}


def shipment_ids(shipments: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(s["shipmentId"]) for s in shipments if s.get("shipmentId")))


# -- orders -----------------------------------------------------------------------------------


def orders_page(channel_id: str, shipments: Sequence[dict[str, Any]],
                details: Mapping[str, Mapping[str, Any]]) -> OrderPage:
    """The orders of one search page. Shipments of one order on the page become one order."""
    page = OrderPage()
    for order_id, group in _by_order(shipments).items():
        raw_group = [with_addresses(s, details.get(str(s.get("shipmentId")))) for s in group]
        raw = jsonable(raw_group[0] if len(raw_group) == 1 else raw_group)
        try:
            order = to_order(channel_id, order_id, raw_group)
        except Refused as why:
            page.failures.append(Unmappable(channel_id, order_id, "order", str(why), raw))
            continue
        if order is not None:
            page.orders.append(order)
            page.raw[order_id] = raw
    return page


def with_addresses(shipment: Mapping[str, Any], detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """The search's shipment with the details' addresses added (None where they are missing), and
    its items marked CANCELLED where the details, read after the search, say so."""
    detail = detail or {}
    merged = {**shipment, "deliveryAddress": detail.get("deliveryAddress"),
              "billingAddress": detail.get("billingAddress")}
    later = detail.get("orderItems")
    cancelled = {str(i.get("orderItemId")) for i in later if isinstance(i, dict) and _cancelled(i)} \
        if isinstance(later, list) else set()
    items = shipment.get("orderItems")
    if cancelled and isinstance(items, list):
        merged["orderItems"] = [{**i, "status": "CANCELLED"} if isinstance(i, dict)
                                and str(i.get("orderItemId")) in cancelled else i for i in items]
    return merged


def to_order(channel_id: str, order_id: str, shipments: Sequence[Mapping[str, Any]]) -> Order | None:
    """One order from its shipments (each with its addresses), of the items still due; None when
    none is (every shipment held, every item cancelled). Raises Refused."""
    lines: list[OrderLine] = []
    due: list[Mapping[str, Any]] = []
    for shipment in shipments:
        if order_id_of(shipment) != order_id:
            raise Refused(f"shipment {shipment.get('shipmentId')} is not of order {order_id}")
        if shipment.get("hold") is True:
            continue  # not yet: the sweep meets it again once released
        items = [item for item in _items(shipment) if not _cancelled(item)]
        lines += [OrderLine(_item_id(item), _sku(item), _quantity(item), _total_price(item)) for item in items]
        if items:
            due.append(shipment)
    if not due:
        return None
    first = due[0]
    ship_to = _address(first.get("deliveryAddress"), "delivery", first)
    bill_to = _address(first.get("billingAddress"), "billing", first)
    total = sum((line.line_total for line in lines), Decimal("0"))
    return Order(channel_id=channel_id, order_id=order_id, bill_to=bill_to, ship_to=ship_to,
                 payments=(Payment(total, order_id),), lines=tuple(lines))


# -- cancellations ----------------------------------------------------------------------------


def cancellations_page(channel_id: str, shipments: Sequence[dict[str, Any]], cancellation_type: str) -> OrderPage:
    """One cancellation per shipment: its CANCELLED items. The documented item carries no
    cancellation type, so a shipment with items cancelled for different reasons shows them all
    under each type's query (a line cancelled twice is still one cancelled line)."""
    page = OrderPage()
    for shipment in shipments:
        raw = jsonable(shipment)
        try:
            order_id = order_id_of(shipment)
        except Refused as why:
            page.failures.append(Unmappable(channel_id, _fallback_id(shipment), "cancellation", str(why), raw))
            continue
        try:
            page.cancellations.append(to_cancellation(channel_id, order_id, shipment, cancellation_type))
        except Refused as why:
            page.failures.append(Unmappable(channel_id, order_id, "cancellation", str(why), raw))
            continue
        if order_id in page.raw:
            earlier = page.raw[order_id]
            page.raw[order_id] = [*(earlier if isinstance(earlier, list) else [earlier]), raw]
        else:
            page.raw[order_id] = raw
    return page


def to_cancellation(channel_id: str, order_id: str, shipment: Mapping[str, Any],
                    cancellation_type: str) -> Cancellation:
    cancelled = [item for item in _items(shipment) if _cancelled(item)]
    if not cancelled:
        raise Refused(f"shipment {shipment.get('shipmentId')} came back as cancelled but has no CANCELLED item")
    lines = tuple(CancelledLine(_item_id(item), _sku(item), _quantity(item)) for item in cancelled)
    return Cancellation(channel_id=channel_id, order_id=order_id, lines=lines, reason_code=cancellation_type,
                        reason_text=reason_text(cancelled[0]), whole_order=False)


def reason_text(item: Mapping[str, Any]) -> str:
    reason, sub_reason = item.get("cancellationReason"), item.get("cancellationSubReason")
    text = str(reason) if reason else ""
    if sub_reason:
        text = f"{text} / {sub_reason}" if text else str(sub_reason)
    return text


# -- parts ------------------------------------------------------------------------------------


def order_id_of(shipment: Mapping[str, Any]) -> str:
    ids = {str(item.get("orderId") or "") for item in _items(shipment)}
    if "" in ids:
        raise Refused(f"an item of shipment {shipment.get('shipmentId')} has no orderId")
    if len(ids) > 1:
        raise Refused(f"shipment {shipment.get('shipmentId')} holds items of orders {', '.join(sorted(ids))}")
    return ids.pop()


def _by_order(shipments: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for shipment in shipments:
        try:
            order_id = order_id_of(shipment)
        except Refused:
            order_id = _fallback_id(shipment)  # to_order refuses it again, with the reason
        grouped.setdefault(order_id, []).append(shipment)
    return grouped


def _fallback_id(shipment: Mapping[str, Any]) -> str:
    return f"shipment:{shipment.get('shipmentId') or '?'}"


def _items(shipment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = shipment.get("orderItems")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise Refused(f"shipment {shipment.get('shipmentId')} has no order items")
    return items


def _cancelled(item: Mapping[str, Any]) -> bool:
    return str(item.get("status") or "").upper() == "CANCELLED"


def _item_id(item: Mapping[str, Any]) -> str:
    value = item.get("orderItemId")
    if value is None or not str(value).strip():
        raise Refused("an order item has no orderItemId")
    return str(value)


def _sku(item: Mapping[str, Any]) -> str:
    problem = sku_problem(item.get("sku"))
    if problem:
        raise Refused(f"order item {item.get('orderItemId')}: {problem}")
    return item["sku"]


def _quantity(item: Mapping[str, Any]) -> int:
    value = item.get("quantity")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise Refused(f"order item {item.get('orderItemId')}: quantity {value!r} is not a whole number above 0")
    return value


def _total_price(item: Mapping[str, Any]) -> Decimal:
    prices = item.get("priceComponents")
    value = prices.get("totalPrice") if isinstance(prices, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise Refused(f"order item {item.get('orderItemId')}: priceComponents.totalPrice {value!r} is not a number")
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise Refused(f"order item {item.get('orderItemId')}: priceComponents.totalPrice {value} is not a price")
    return amount


def _address(value: Any, kind: str, shipment: Mapping[str, Any]) -> Address:
    where = f"shipment {shipment.get('shipmentId')}"
    if not isinstance(value, dict):
        raise Refused(f"{where} has no {kind} address")
    parts: dict[str, str] = {}
    for name, field_ in ADDRESS_FIELDS.items():
        keys = PINCODE_KEYS if name == "pinCode" else (name,)
        text = next((t for t in (_text(value.get(key)) for key in keys) if t), "")
        if not text and name not in ADDRESS_OPTIONAL:
            raise Refused(f"{where}: the {kind} address has no {name}")
        parts[field_] = text
    # The OMS address has two lines and no landmark: the landmark goes on line 2, as a courier reads it.
    landmark = _text(value.get("landmark"))
    if landmark and landmark not in parts["line2"]:
        parts["line2"] = f"{parts['line2']}, {landmark}" if parts["line2"] else landmark
    return Address(**parts)


def _text(value: Any) -> str:
    return "" if value is None or isinstance(value, (dict, list)) else str(value).strip()


def jsonable(value: Any) -> Any:
    """A parsed answer as plain JSON: Decimals as strings (exactly as Flipkart wrote them)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
