"""Pure mapping for Orders API v2026-01-01 `searchOrders`: query parameters, and orders to domain.

One query serves both new orders and cancellations (marketplaces.md 1.4-1.5): merchant-fulfilled
orders (`fulfilledBy`, a channel option) updated in the window, with the recipient, proceeds,
cancellation and fulfillment data sets. Amazon answers a data set only when `includedData` names it
("Get orders with filtering criteria"), and FULFILLMENT is the one with `fulfillmentStatus`. Per order:

- fulfillmentStatus CANCELLED, or every item cancelled: only a Cancellation(whole_order=True) of every
  item, which needs no address nor money (a cancelled order has neither);
- otherwise an Order of its items, less cancelled items Amazon no longer gives a quantity and price
  (quantityOrdered 0, as Orders v0 did: the OMS cannot take such a line); plus a Cancellation of the
  items that carry `cancellation.cancellationExecution`, made whether or not the Order can be (an
  order already at the OMS must hear of it); plus a CancellationRequest of the items that carry only
  `cancellationRequest` (the buyer asking; the seller decides);
- anything that cannot become an OMS document: an Unmappable with the order as received.

Names: `recipient.deliveryAddress.name` is one string. first_name is every word but the last,
last_name the last word; a one-word name is the first_name, with last_name "" (the OMS takes an
empty LastName; a first name alone reads better on a label than a last name alone).
Amazon gives no billing address, so bill_to is ship_to. `product.price.unitPrice` is the price of
one unit (model: ItemPrice), so a line's total is unitPrice x quantityOrdered, to the paisa.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from wheel.domain import (
    Address,
    Cancellation,
    CancellationRequest,
    CancelledLine,
    Order,
    OrderLine,
    Payment,
    Unmappable,
    sku_problem,
)
from wheel.marketplaces.base import OrderPage, PullWindow

SEARCH_ORDERS = "/orders/2026-01-01/orders"
OPERATION = "searchOrders"
# Every data set the mapping reads: recipient, proceeds, item cancellation, and fulfillment (its
# fulfillmentStatus says CANCELLED; without FULFILLMENT Amazon leaves Order.fulfillment out).
INCLUDED_DATA = ("RECIPIENT", "PROCEEDS", "CANCELLATION", "FULFILLMENT")
# PENDING orders have no address yet; they come back once they move on (lastUpdatedTime changes).
FULFILLMENT_STATUSES = ("UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED")
# searchOrders' fulfilledBy: AMAZON orders (FBA) are Amazon's to ship, so by default the OMS gets
# only the seller's own; a channel can ask for both (options.fulfilled_by).
FULFILLED_BY = ("MERCHANT", "AMAZON")
DEFAULT_FULFILLED_BY = ("MERCHANT",)
MAX_RESULTS_PER_PAGE = 100
CANCELLED = "CANCELLED"
DEFAULT_CANCELLER = "AMAZON"
CENT = Decimal("0.01")


def iso(moment: datetime) -> str:
    """ISO 8601 UTC in whole seconds ('Z'), rounded down: a window's sub-second tail is pulled again
    by the next window, which starts `overlap_s` earlier."""
    if moment.tzinfo is None:
        raise ValueError(f"a pull window needs timezone-aware times, not {moment!r}")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_query(marketplace_id: str, window: PullWindow, token: str | None = None, *,
                 fulfilled_by: tuple[str, ...] = DEFAULT_FULFILLED_BY) -> dict[str, str | int]:
    """searchOrders' query for the orders updated in `window`; with `token`, the page it names
    (every other parameter must stay the same)."""
    query: dict[str, str | int] = {
        "marketplaceIds": marketplace_id,
        "lastUpdatedAfter": iso(window.start),
        "lastUpdatedBefore": iso(window.end),
        "fulfillmentStatuses": ",".join(FULFILLMENT_STATUSES),
        "includedData": ",".join(INCLUDED_DATA),
        "fulfilledBy": ",".join(fulfilled_by),
        "maxResultsPerPage": MAX_RESULTS_PER_PAGE,
    }
    if token is not None:
        query["paginationToken"] = token
    return query


def next_token(answer: Any) -> str | None:
    pagination = answer.get("pagination") if isinstance(answer, Mapping) else None
    token = pagination.get("nextToken") if isinstance(pagination, Mapping) else None
    return token if isinstance(token, str) and token else None


@dataclass(frozen=True)
class Mapped:
    """What one Amazon order becomes: an Order or an Unmappable of it, a Cancellation, a
    CancellationRequest; or an Unmappable cancellation alone."""

    order: Order | None = None
    cancellation: Cancellation | None = None
    failure: Unmappable | None = None
    request: CancellationRequest | None = None


def read_page(channel_id: str, orders: list[Any], currency: str, token: str | None) -> OrderPage:
    """One searchOrders page as an OrderPage; `token` is the answer's nextToken (None: the last page)."""
    page = OrderPage(cursor={"token": token} if token else None, calls=1)
    for raw in orders:
        status = _get(raw, "fulfillment", "fulfillmentStatus")
        if status in ("PENDING", "PENDING_AVAILABILITY"):
            continue  # not asked for; no address yet
        mapped = map_order(channel_id, raw, currency)
        order_id = raw.get("orderId") if isinstance(raw, Mapping) else None
        if isinstance(order_id, str) and order_id:
            page.raw[order_id] = jsonable(raw)
        if mapped.order:
            page.orders.append(mapped.order)
        if mapped.cancellation:
            page.cancellations.append(mapped.cancellation)
        if mapped.failure:
            page.failures.append(mapped.failure)
        if mapped.request:
            page.requests.append(mapped.request)
    return page


def map_order(channel_id: str, raw: Any, currency: str) -> Mapped:
    order_id = raw.get("orderId") if isinstance(raw, Mapping) else None
    items = raw.get("orderItems") if isinstance(raw, Mapping) else None
    executed = [i for i in items if _executed(i)] if isinstance(items, list) else []
    cancelled = (_get(raw, "fulfillment", "fulfillmentStatus") == CANCELLED
                 or (bool(executed) and len(executed) == len(items)))
    kind = "cancellation" if cancelled else "order"
    partial = request = None
    try:
        if not isinstance(order_id, str) or not order_id:
            raise _Problem("the order has no orderId")
        if not isinstance(items, list) or not items or not all(isinstance(i, Mapping) for i in items):
            raise _Problem("the order has no orderItems")
        if cancelled:
            return Mapped(cancellation=_cancellation(channel_id, order_id, items, whole_order=True))
        partial = _cancellation(channel_id, order_id, executed, whole_order=False) if executed else None
        asked = [i for i in items if not _executed(i) and isinstance(_get(i, "cancellation", "cancellationRequest"), Mapping)]
        request = _request(channel_id, order_id, asked) if asked else None
        return Mapped(order=_order(channel_id, order_id, raw, items, currency), cancellation=partial, request=request)
    except _Problem as problem:
        failure = Unmappable(channel_id=channel_id, order_id=str(order_id or ""), kind=kind, reason=str(problem),
                             raw=jsonable(raw))
        # What was mapped before the problem (a cancellation, a request) goes on without the order:
        # the OMS may have the order already.
        return Mapped(cancellation=partial, failure=failure, request=request)


def _order(channel_id: str, order_id: str, raw: Mapping[str, Any], items: list[Mapping[str, Any]],
           currency: str) -> Order:
    ship_to = _address(raw)
    # A cancelled item is a line while Amazon still gives its quantity (the OMS then cancels it); at
    # quantityOrdered 0 there is nothing to order, and its cancellation says so to the OMS.
    lines = tuple(_line(item, currency) for item in items if not (_executed(item) and item.get("quantityOrdered") == 0))
    total = _money(_get(raw, "proceeds", "grandTotal"), currency, "proceeds.grandTotal")
    return Order(channel_id=channel_id, order_id=order_id, bill_to=ship_to, ship_to=ship_to,
                 payments=(Payment(total, reference=order_id),), lines=lines)


def jsonable(value: Any) -> Any:
    """The answer as plain JSON: Decimals (numbers read exactly) become strings, and so do the
    NaN and Infinity literals (Python's json reads them as floats; Postgres's jsonb refuses them)."""
    if isinstance(value, Decimal) or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# -- parts of an order ----------------------------------------------------------------------------


class _Problem(Exception):
    """Why an order cannot be mapped."""


def _get(value: Any, *path: str) -> Any:
    for step in path:
        value = value.get(step) if isinstance(value, Mapping) else None
    return value


def _text(value: Any, what: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Problem(f"the order has no {what}")
    return value.strip()


def _address(raw: Mapping[str, Any]) -> Address:
    address = _get(raw, "recipient", "deliveryAddress")
    if not isinstance(address, Mapping):
        raise _Problem("the order has no recipient.deliveryAddress (includedData=RECIPIENT needs the PII roles)")
    words = _text(address.get("name"), "recipient name").split()
    extra = [_text(address.get(k), k, required=False) for k in ("addressLine2", "addressLine3")]
    return Address(
        first_name=" ".join(words[:-1]) or words[0], last_name=words[-1] if len(words) > 1 else "",
        line1=_text(address.get("addressLine1"), "addressLine1"), line2=", ".join(e for e in extra if e),
        city=_text(address.get("city"), "city"), state=_text(address.get("stateOrRegion"), "stateOrRegion"),
        zip_code=_text(address.get("postalCode"), "postalCode"),
    )


def _identity(item: Mapping[str, Any], minimum: int) -> tuple[str, str, int]:
    line_id = item.get("orderItemId")
    if not isinstance(line_id, str) or not line_id:
        raise _Problem("an item has no orderItemId")
    sku = _get(item, "product", "sellerSku")
    problem = sku_problem(sku)
    if problem:
        raise _Problem(f"item {line_id}: {problem}")
    quantity = item.get("quantityOrdered")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < minimum:
        raise _Problem(f"item {line_id}: quantityOrdered {quantity!r} is not a whole number >= {minimum}")
    return line_id, sku, quantity


def _line(item: Mapping[str, Any], currency: str) -> OrderLine:
    line_id, sku, quantity = _identity(item, 1)
    unit = _money(_get(item, "product", "price", "unitPrice"), currency, f"item {line_id} product.price.unitPrice")
    try:
        total = (unit * quantity).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than a Decimal context holds (unitPrice 1E+999999)
        raise _Problem(f"item {line_id}: product.price.unitPrice {unit} x {quantity} is not an amount") from None
    return OrderLine(line_id=line_id, sku=sku, quantity=quantity, line_total=total)


def _executed(item: Any) -> bool:
    return isinstance(_get(item, "cancellation", "cancellationExecution"), Mapping)


def _request(channel_id: str, order_id: str, items: list[Mapping[str, Any]]) -> CancellationRequest:
    requests = [_get(i, "cancellation", "cancellationRequest") for i in items]
    requester = next((r["requester"] for r in requests if isinstance(r.get("requester"), str) and r["requester"]), "BUYER")
    reason = next((r["cancelReason"] for r in requests if isinstance(r.get("cancelReason"), str) and r["cancelReason"]), "")
    return CancellationRequest(channel_id=channel_id, order_id=order_id,
                               lines=tuple(CancelledLine(*_identity(item, 0)) for item in items),
                               requester=requester, reason=reason)


def _cancellation(channel_id: str, order_id: str, items: list[Mapping[str, Any]], *, whole_order: bool) -> Cancellation:
    lines = tuple(CancelledLine(*_identity(item, 0)) for item in items)
    executions = [e for i in items if isinstance(e := _get(i, "cancellation", "cancellationExecution"), Mapping)]
    by = next((e["cancelledBy"] for e in executions if isinstance(e.get("cancelledBy"), str) and e["cancelledBy"]),
              DEFAULT_CANCELLER)
    reason = next((e["cancelReason"] for e in executions if isinstance(e.get("cancelReason"), str) and e["cancelReason"]),
                  "")
    return Cancellation(channel_id=channel_id, order_id=order_id, lines=lines, reason_code=by, reason_text=reason,
                        whole_order=whole_order)


def _money(value: Any, currency: str, what: str) -> Decimal:
    """A Money ({amount: decimal string, currencyCode}) in the channel's currency, >= 0."""
    amount = value.get("amount") if isinstance(value, Mapping) else None
    if not isinstance(value, Mapping) or amount is None:
        raise _Problem(f"the order has no {what}")
    if value.get("currencyCode") != currency:
        raise _Problem(f"{what} is in {value.get('currencyCode')!r}, not {currency}")
    try:
        if isinstance(amount, bool) or not isinstance(amount, (str, int, Decimal)):
            raise InvalidOperation
        parsed = Decimal(amount.strip() if isinstance(amount, str) else amount)
    except InvalidOperation:
        raise _Problem(f"{what} {amount!r} is not a decimal amount") from None
    if not parsed.is_finite() or parsed < 0:
        raise _Problem(f"{what} {amount!r} is not an amount >= 0")
    return parsed
