"""Tata CLiQ, as the OMS team documented it: a JSON POST per operation with a static bearer token,
and two XML GETs for orders (new-orders, cancelled-orders) that answer everything at once: no
filters, no paging.

No quotas are published; none are enforced unless a channel sets some (`quotas`; the order
operations are "newOrders" and "cancelledOrders").
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import hmac

from lxml import etree
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from wheel.sandbox.core import ChannelBehaviour, SandboxCore, error, json_response
from wheel.sandbox.orders import SandboxAddress, SandboxOrder

OPERATIONS = {
    "ranging": ("ean", "sku"),
    "deranging": ("ean", "sku"),
    "inventory": ("ean", "sku", "quantity"),
    "pricing": ("ean", "sku", "mrp", "sellingPrice"),
}
# The order GETs: path segment -> operation (the quota's key).
ORDER_OPERATIONS = {"new-orders": "newOrders", "cancelled-orders": "cancelledOrders"}


class TataCliq:
    marketplace = "tatacliq"
    quotas: dict[str, tuple[float, float]] = {}

    def rules(self) -> list[Rule]:
        return [Rule("/tatacliq/channels/<channel>/<any(ranging,deranging,inventory,pricing):operation>",
                     endpoint="operation", methods=["POST"]),
                Rule("/tatacliq/channels/<channel>/<any('new-orders','cancelled-orders'):listing>",
                     endpoint="orders", methods=["GET"])]

    def on_operation(self, request: Request, core: SandboxCore, channel: str, operation: str) -> Response:
        body = request.get_json(silent=True)
        response = self._handle(request, core, channel, operation, body)
        core.record(request, self.marketplace, channel, response.status_code, operation, body)
        return response

    def on_orders(self, request: Request, core: SandboxCore, channel: str, listing: str) -> Response:
        operation = ORDER_OPERATIONS[listing]
        response = self._admit(request, core, channel, operation)
        if response is None:
            with core.orders.lock:  # lines change under this lock
                orders = core.orders.for_channel(channel)
                body = new_orders_xml(orders) if listing == "new-orders" else cancelled_orders_xml(orders)
            response = Response(body, status=200, content_type="application/xml; charset=utf-8")
        core.record(request, self.marketplace, channel, response.status_code, operation)
        return response

    def _admit(self, request: Request, core: SandboxCore, channel: str, operation: str) -> Response | None:
        """None when the call may proceed: the channel exists, the token is right, the quota allows it."""
        behaviour: ChannelBehaviour | None = core.channel(self.marketplace, channel)
        if behaviour is None:
            return error(404, "CHANNEL_NOT_FOUND", f"no tatacliq channel {channel}")
        supplied = request.headers.get("Authorization", "")
        if behaviour.refuse_token or not hmac.compare_digest(supplied.encode(), f"Bearer {behaviour.token}".encode()):
            if behaviour.delay_s:
                core.admit(behaviour, channel, "_auth")  # the latency still applies
            return error(401, "UNAUTHORIZED", "invalid or expired bearer token")
        return core.admit(behaviour, channel, operation)

    def _handle(self, request, core: SandboxCore, channel: str, operation: str, body: Any) -> Response:
        refusal = self._admit(request, core, channel, operation)
        if refusal is not None:
            return refusal
        problem = _check_items(body, OPERATIONS[operation])
        if problem is not None:
            return problem
        results = []
        with core.lock:
            for item in body:
                failure = _item_failure(operation, item)
                if failure:
                    results.append({"sku": item["sku"], "status": "FAILURE", "reason": failure})
                    continue
                listing = core.listing(channel, item["sku"])
                listing["ean"] = item["ean"]
                if operation in ("ranging", "deranging"):
                    listing["ranged"] = operation == "ranging"
                elif operation == "inventory":
                    listing["quantity"] = item["quantity"]
                else:
                    listing["mrp"], listing["selling_price"] = str(item["mrp"]), str(item["sellingPrice"])
                results.append({"sku": item["sku"], "status": "SUCCESS"})
        status = "SUCCESS" if all(r["status"] == "SUCCESS" for r in results) else "PARTIAL"
        return json_response({"status": status, "items": results})


def _check_items(body: Any, keys: tuple[str, ...]) -> Response | None:
    if not isinstance(body, list) or not body:
        return error(400, "INVALID_PAYLOAD", "expected a non-empty JSON array of items")
    for index, item in enumerate(body):
        if not isinstance(item, dict) or any(k not in item for k in keys):
            return error(400, "INVALID_ITEM", f"item {index} needs {', '.join(keys)}")
        if any(not isinstance(item[k], str) or not item[k].strip() for k in ("ean", "sku")):
            return error(400, "INVALID_ITEM", f"item {index} needs non-blank ean, sku")
    return None


def _item_failure(operation: str, item: dict) -> str | None:
    if operation == "inventory":
        quantity = item["quantity"]
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            return "quantity must be a whole number >= 0"
    if operation == "pricing":
        try:
            mrp, price = Decimal(str(item["mrp"])), Decimal(str(item["sellingPrice"]))
        except InvalidOperation:
            return "mrp and sellingPrice must be numbers"
        if price > mrp:
            return "sellingPrice is above mrp"
        if price <= 0:
            return "sellingPrice must be positive"
    return None


# -- orders (XML) --------------------------------------------------------------------------------


def _element(parent: etree._Element, tag: str, text: str) -> etree._Element:
    child = etree.SubElement(parent, tag)
    child.text = text
    return child


def _address(parent: etree._Element, tag: str, address: SandboxAddress) -> None:
    element = etree.SubElement(parent, tag)
    for name, value in (("FirstName", address.first_name), ("LastName", address.last_name),
                        ("Address1", address.line1), ("Address2", address.line2), ("City", address.city),
                        ("State", address.state), ("Pincode", address.zip_code)):
        _element(element, name, value)


def _document(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def new_orders_xml(orders: list[SandboxOrder]) -> bytes:
    """Every order not wholly cancelled, as placed (all its lines, cancelled ones too)."""
    root = etree.Element("Orders")
    for order in orders:
        if order.cancelled:
            continue
        element = etree.SubElement(root, "Order")
        _element(element, "OrderNo", order.order_id)
        info = etree.SubElement(element, "AddressInfo")
        _address(info, "Shipping", order.ship_to)
        _address(info, "Billing", order.bill_to)
        payment = etree.SubElement(element, "PaymentInfo")
        _element(payment, "PaymentCost", str(order.total))
        _element(payment, "PaymentId", order.payment_ref)
        lines = etree.SubElement(element, "OrderLines")
        for line in order.lines:
            line_element = etree.SubElement(lines, "OrderLine")
            _element(line_element, "TransactionId", line.line_id)
            _element(line_element, "ArticleNumber", line.sku)
            _element(line_element, "Price", line.price)
            # An extension: Tata CLiQ's lines are one unit each and carry no quantity, but the
            # sandbox's generated orders may have more; only then is <Quantity> sent.
            if line.quantity != 1:
                _element(line_element, "Quantity", str(line.quantity))
    return _document(root)


def cancelled_orders_xml(orders: list[SandboxOrder]) -> bytes:
    """One <Order> per cancelled line, with its OrderNo and that line (every unit of it)."""
    root = etree.Element("Orders")
    for order in orders:
        for line in order.lines:
            if not line.cancelled:
                continue
            element = etree.SubElement(root, "Order")
            _element(element, "OrderNo", order.order_id)
            line_element = etree.SubElement(etree.SubElement(element, "OrderLines"), "OrderLine")
            _element(line_element, "TransactionId", line.line_id)
            _element(line_element, "ArticleNumber", line.sku)
            _element(line_element, "CancellationReason", line.cancel_reason or "")
            if line.quantity != 1:  # the same extension as in new-orders: the whole line is cancelled
                _element(line_element, "Quantity", str(line.quantity))
    return _document(root)
