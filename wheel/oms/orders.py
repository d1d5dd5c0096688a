"""Domain orders and cancellations into the OMS's XML documents, and into JSON for storage.

Every document is validated against its XSD (order.xsd, order-cancellation.xsd) before it is
returned, so nothing the OMS would refuse ever reaches the outbox. Money is written as the
Decimal it is ("900.0" stays "900.0"), never through a float.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from decimal import Decimal
from typing import Any

from lxml import etree

from wheel.domain import Address, Cancellation, Order
from wheel.oms.xml import OmsMessageError, parse, schema

SCHEMAS = {"order": "order.xsd", "cancellation": "order-cancellation.xsd"}
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
# An XML name without a namespace prefix (NCName); names starting with "xml" are reserved.
_NAME = re.compile(r"[^\W\d][\w.\-]*")


# -- documents ---------------------------------------------------------------------------------


def order_document(order: Order, header: Mapping[str, str] = {}) -> bytes:
    """The OMS order document: <Order OrderNo> with header attributes after OrderNo, bill-to and
    ship-to, payments and lines (OrderedQty only when the quantity is not 1)."""

    def build() -> etree._Element:
        root = etree.Element("Order", {"OrderNo": order.order_id})
        _add_header(root, header)
        _person(root, "PersonInfoBillTo", order.bill_to)
        _person(root, "PersonInfoShipTo", order.ship_to)
        payments = etree.SubElement(root, "PaymentDetailsList")
        for payment in order.payments:
            etree.SubElement(payments, "PaymentDetails",
                             {"ProcessedAmount": _money(payment.amount), "Reference1": payment.reference})
        lines = etree.SubElement(root, "OrderLines")
        for line in order.lines:
            element = etree.SubElement(lines, "OrderLine", {} if line.quantity == 1 else {"OrderedQty": str(line.quantity)})
            etree.SubElement(element, "Item", {"ItemID": line.sku})
            etree.SubElement(element, "LinePriceInfo", {"LineTotal": _money(line.line_total)})
        return root

    return _document(build, "order", f"order {order.order_id!r} of channel {order.channel_id}")


def cancellation_document(cancellation: Cancellation, *, whole_order: bool, header: Mapping[str, str] = {}) -> bytes:
    """The OMS cancellation document: Action="CANCEL" for the whole order (no lines), or
    Action="MODIFY" with one <OrderLine Action="CANCEL" Quantity> per cancelled line."""
    c = cancellation

    def build() -> etree._Element:
        root = etree.Element("Order", {
            "Action": "CANCEL" if whole_order else "MODIFY", "OrderNo": c.order_id,
            "ModificationReasonCode": c.reason_code, "ModificationReasonText": c.reason_text,
        })
        _add_header(root, header)
        if not whole_order and c.lines:  # no lines: _problem says a MODIFY needs some
            lines = etree.SubElement(root, "OrderLines")
            for line in c.lines:
                element = etree.SubElement(lines, "OrderLine", {"Action": "CANCEL", "Quantity": str(line.quantity)})
                etree.SubElement(element, "Item", {"ItemID": line.sku})
        return root

    return _document(build, "cancellation", f"cancellation of order {c.order_id!r} of channel {c.channel_id}")


def validate_document(body: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """"order" or "cancellation" (a root <Order> with an Action is a cancellation), once the body
    is safely parsed and valid against that kind's XSD; OmsMessageError (a ValueError) saying why not."""
    root = parse(body, max_bytes=max_bytes)
    if root.tag != "Order":
        raise OmsMessageError(f"the root element is <{root.tag}>, not <Order>")
    kind = "cancellation" if "Action" in root.attrib else "order"
    if problem := _problem(root, kind):
        raise OmsMessageError(problem)
    return kind


def _document(build: Callable[[], etree._Element], kind: str, what: str) -> bytes:
    try:
        root = build()
    except ValueError as exc:  # a bad header, a float for money, control characters (lxml)
        raise ValueError(f"{what} cannot be an OMS document: {exc}") from None
    if problem := _problem(root, kind):
        raise ValueError(f"{what} cannot be an OMS document: {problem}")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8", pretty_print=True)


def _problem(root: etree._Element, kind: str) -> str | None:
    """Why the document is not a valid one of its kind (None: it is)."""
    name = SCHEMAS[kind]
    xsd = schema(name)
    if not xsd.validate(root):
        errors = [(f"line {e.line}: " if e.line else "") + e.message for e in xsd.error_log]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return f"{name}: " + "; ".join(errors[:3]) + more
    if kind == "cancellation":  # what XSD 1.0 cannot say
        has_lines = root.find("OrderLines") is not None
        if root.get("Action") == "MODIFY" and not has_lines:
            return "a partial cancellation (Action MODIFY) has no lines to cancel"
        if root.get("Action") == "CANCEL" and has_lines:
            return "a whole-order cancellation (Action CANCEL) takes no OrderLines; use MODIFY to cancel lines"
    return None


def _add_header(root: etree._Element, header: Mapping[str, str]) -> None:
    """The channel's extra <Order> attributes, after the document's own; none may replace them."""
    reserved = {"Action", *root.attrib}
    for name, value in header.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name.lower().startswith("xml"):
            raise ValueError(
                f"header attribute name {name!r} is not an XML name (a letter or '_' first, then letters, "
                "digits, '_', '-' or '.'; no ':' and not starting with 'xml')"
            )
        if name in reserved:
            raise ValueError(f"header attribute {name!r} would replace the document's own {name}")
        if not isinstance(value, str):
            raise ValueError(f"header attribute {name!r} is {value!r}, not a string")
        root.set(name, value)


def _person(root: etree._Element, tag: str, address: Address) -> None:
    person = etree.SubElement(root, tag, {
        "City": address.city, "FirstName": address.first_name, "LastName": address.last_name,
        "State": address.state, "ZipCode": address.zip_code,
    })
    # IRLAddressLine2 is written even when empty; order.xsd requires it.
    etree.SubElement(person, "Extn", {"IRLAddressLine1": address.line1, "IRLAddressLine2": address.line2})


def _money(amount: Decimal) -> str:
    """The amount as written ("900.0" stays "900.0"); an exponent form (1E+3) as plain digits."""
    if not isinstance(amount, Decimal):
        raise ValueError(f"money must be a Decimal, not {type(amount).__name__} {amount!r}")
    return format(amount, "f")


# -- JSON (the JSONB columns) ------------------------------------------------------------------


def _address_json(address: Any) -> dict[str, Any]:
    """dataclasses.asdict of an address (its fields are all text), without asdict's deep copy of
    each value: a pull writes two per order."""
    return {f.name: getattr(address, f.name) for f in fields(address)}


def order_to_json(order: Order) -> dict[str, Any]:
    """The order as JSON-able data; money as strings, so it reads back exactly."""
    return {
        "channel_id": order.channel_id,
        "order_id": order.order_id,
        "bill_to": _address_json(order.bill_to),
        "ship_to": _address_json(order.ship_to),
        "payments": [{"amount": str(p.amount), "reference": p.reference} for p in order.payments],
        "lines": [{"line_id": line.line_id, "sku": line.sku, "quantity": line.quantity, "line_total": str(line.line_total)}
                  for line in order.lines],
    }
