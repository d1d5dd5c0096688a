"""Tata CLiQ's order answers (new-orders, cancelled-orders): parsed with the hardened XML parser
and mapped into the domain's orders and cancellations.

Both answers are `<Orders><Order>...</Order>...</Orders>`. An order that cannot be mapped becomes
an Unmappable naming the field, with the order's XML as its raw form, so nothing is lost; the
rest of the answer is still mapped. An answer that is not such a document at all is a
PermanentError.

New-orders answers every open order at once (no filter, no paging), so it is read as it arrives
(`NewOrdersReader`) and handed on a page of orders at a time: memory follows the page, not the
size of the open-order book.
"""

from __future__ import annotations

import re
from decimal import Decimal

from lxml import etree

from wheel.domain import (
    ORDERS,
    Address,
    Cancellation,
    CancelledLine,
    Order,
    OrderLine,
    Payment,
    Unmappable,
    sku_problem,
)
from wheel.marketplaces.base import OrderPage
from wheel.marketplaces.errors import PermanentError
from wheel.oms.xml import OmsMessageError, parse

# A cancelled-orders answer is parsed whole: this bounds it unless the channel sets its own limit.
MAX_ANSWER_BYTES = 50 * 1024 * 1024
# New orders handed on per page (each page is stored in its own transactions).
PAGE_ORDERS = 1000
# Plain decimals only, as the OMS takes them: no sign, exponent, NaN or thousands separator.
_MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")
_QUANTITY = re.compile(r"[1-9][0-9]{0,5}")
# Address fields that may be blank (a one-word name, a one-line address); the rest may not.
_ADDRESS_FIELDS = (("FirstName", True), ("LastName", False), ("Address1", True), ("Address2", False),
                   ("City", True), ("State", True), ("Pincode", True))
CANCEL_REASON_CODE = "tatacliq"  # Tata CLiQ gives a reason's text only
_DECLARATIONS = (b"<!DOCTYPE", b"<!ENTITY")


class _Unmappable(ValueError):
    """Why one order cannot be mapped (the reason names the field)."""


def parse_answer(body: bytes, what: str, *, secrets: tuple[str, ...] = (), max_bytes: int | None = None) -> etree._Element:
    """The `<Orders>` root of an answer, or PermanentError saying why the answer is unusable."""
    limit = max_bytes if max_bytes is not None else MAX_ANSWER_BYTES
    if len(body) > limit:
        raise PermanentError(f"{what} answered {len(body):,} bytes, over the {limit:,}-byte limit")
    try:
        root = parse(body, max_bytes=limit)
    except OmsMessageError as exc:
        raise PermanentError(_mask(f"{what} answered something that is not usable XML: {exc}", secrets)) from None
    if root.tag != "Orders":
        raise PermanentError(_mask(f"{what} answered <{root.tag}>, not <Orders>", secrets))
    return root


def _mask(message: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def read_page(job: str, channel_id: str, body: bytes, what: str, *, secrets: tuple[str, ...] = (),
              max_bytes: int | None = None) -> OrderPage:
    """The one page of a pull ("orders" or "cancellations") from the whole answer's bytes."""
    limit = max_bytes if max_bytes is not None else MAX_ANSWER_BYTES
    if job == ORDERS:
        if len(body) > limit:
            raise PermanentError(f"{what} answered {len(body):,} bytes, over the {limit:,}-byte limit")
        reader = NewOrdersReader(channel_id, what, secrets=secrets, page_size=None)
        (page,) = [*reader.feed(body), *reader.close()]
        return page
    page = map_cancellations(channel_id, parse_answer(body, what, secrets=secrets, max_bytes=limit))
    page.calls = 1
    return page


def xml_text(element: etree._Element) -> str:
    """An element's XML, as kept in the raw record."""
    return etree.tostring(element, encoding="unicode", with_tail=False)


def _text(parent: etree._Element, path: str) -> str:
    return (parent.findtext(path) or "").strip()


def _required(parent: etree._Element, path: str, name: str) -> str:
    value = _text(parent, path)
    if not value:
        raise _Unmappable(f"{name} is missing or blank")
    return value


def _money(text: str, name: str) -> Decimal:
    if not _MONEY.fullmatch(text):
        raise _Unmappable(f"{name} {text[:40]!r} is not a plain decimal amount")
    return Decimal(text)


# -- new orders --------------------------------------------------------------------------------


class NewOrdersReader:
    """New orders, read as the answer arrives: `feed` it bytes and get the pages filled so far,
    then `close` for the rest (or `flush` for what was read, when the rest will not come).

    Hardened as wheel.oms.xml.parse is: no DTD (a DOCTYPE or an entity is refused), no network,
    lxml's depth and size caps. Each `<Order>` is mapped when its end tag arrives and then
    dropped from the tree. The first page handed on counts the one call.
    """

    def __init__(self, channel_id: str, what: str, *, secrets: tuple[str, ...] = (),
                 page_size: int | None = PAGE_ORDERS):
        self.channel_id, self.what, self.secrets, self.page_size = channel_id, what, secrets, page_size
        self.read = 0  # orders read so far (mapped or not)
        self._parser = etree.XMLPullParser(
            events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
            dtd_validation=False, huge_tree=False, remove_comments=True, remove_pis=True,
        )
        self._page = OrderPage(calls=1)
        self._seen: set[str] = set()
        self._depth = 0
        self._tail = b""  # the last bytes fed, for a declaration split between chunks
        self._content = False

    def feed(self, data: bytes) -> list[OrderPage]:
        window = (self._tail + data).upper()
        if any(declaration in window for declaration in _DECLARATIONS):
            raise self._unusable("DOCTYPE and ENTITY declarations are refused (no external entities, "
                                 "no entity expansion)")
        self._tail = (self._tail + data)[-(len(_DECLARATIONS[0]) - 1):]
        self._content = self._content or bool(data.strip())
        try:
            self._parser.feed(data)
        except (etree.XMLSyntaxError, ValueError, LookupError) as exc:
            raise self._unusable(f"not well-formed XML: {exc}") from None
        return self._drain()

    def close(self) -> list[OrderPage]:
        """The pages left, the last one possibly empty. The answer must have been whole."""
        if not self._content:
            raise self._unusable("message is empty")
        try:
            self._parser.close()
        except (etree.XMLSyntaxError, ValueError, LookupError) as exc:
            raise self._unusable(f"not well-formed XML: {exc}") from None
        return self.flush()

    def flush(self) -> list[OrderPage]:
        """Every order read and not handed on yet, the last page possibly empty."""
        pages = self._drain()
        pages.append(self._page)
        self._page = OrderPage()
        return pages

    def _drain(self) -> list[OrderPage]:
        full: list[OrderPage] = []
        for event, element in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._check_root(element)
                continue
            self._depth -= 1
            if self._depth != 1:
                continue  # inside an order: it is mapped whole at its end tag
            if element.tag == "Order":
                self._take(element)
            # Done with it: free it, and the orders before it, from the tree.
            element.clear(keep_tail=False)
            while element.getprevious() is not None:
                del element.getparent()[0]
            if self.page_size is not None and len(self._page.orders) + len(self._page.failures) >= self.page_size:
                full.append(self._page)
                self._page = OrderPage()
        return full

    def _check_root(self, root: etree._Element) -> None:
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:  # one the byte scan missed (UTF-16, say)
            raise self._unusable("DOCTYPE declarations are refused")
        if root.tag != "Orders":
            raise PermanentError(_mask(f"{self.what} answered <{root.tag}>, not <Orders>", self.secrets))

    def _take(self, element: etree._Element) -> None:
        self.read += 1
        raw = xml_text(element)
        order_id = _text(element, "OrderNo")
        try:
            if not order_id:
                raise _Unmappable("OrderNo is missing or blank")
            if order_id in self._seen:
                raise _Unmappable(f"OrderNo {order_id} appears more than once in the answer")
            self._seen.add(order_id)
            order = map_order(self.channel_id, order_id, element)
        except _Unmappable as exc:
            self._page.failures.append(Unmappable(self.channel_id, order_id, "order", str(exc), raw))
            return
        self._page.orders.append(order)
        self._page.raw[order_id] = raw

    def _unusable(self, why: str) -> PermanentError:
        return PermanentError(_mask(f"{self.what} answered something that is not usable XML: {why}", self.secrets))


def map_order(channel_id: str, order_id: str, element: etree._Element) -> Order:
    """One `<Order>` of new-orders; raises _Unmappable naming the field that is wrong."""
    ship_to, bill_to = _address(element, "Shipping"), _address(element, "Billing")
    payments = tuple(Payment(_money(_text(info, "PaymentCost"), "PaymentInfo/PaymentCost"), _text(info, "PaymentId"))
                     for info in element.iterfind("PaymentInfo"))
    lines: list[OrderLine] = []
    seen: set[str] = set()
    for number, line in enumerate(element.iterfind("OrderLines/OrderLine"), start=1):
        line_id = _required(line, "TransactionId", f"OrderLine {number} TransactionId")
        if line_id in seen:
            raise _Unmappable(f"TransactionId {line_id} appears twice in the order")
        seen.add(line_id)
        sku = _text(line, "ArticleNumber")
        problem = sku_problem(sku)
        if problem is not None:
            raise _Unmappable(f"OrderLine {line_id} ArticleNumber: {problem}")
        price = _money(_text(line, "Price"), f"OrderLine {line_id} Price")
        lines.append(OrderLine(line_id=line_id, sku=sku, quantity=_quantity(line, f"OrderLine {line_id}"),
                               line_total=price))
    if not lines:
        raise _Unmappable("the order has no OrderLines/OrderLine")
    return Order(channel_id=channel_id, order_id=order_id, bill_to=bill_to, ship_to=ship_to, payments=payments,
                 lines=tuple(lines))


def _quantity(line: etree._Element, name: str) -> int:
    """Tata CLiQ's lines are one unit each; `<Quantity>` is the sandbox's extension for more."""
    quantity = _text(line, "Quantity") or "1"
    if not _QUANTITY.fullmatch(quantity):
        raise _Unmappable(f"{name} Quantity {quantity[:20]!r} is not a whole number above 0")
    return int(quantity)


def _address(order: etree._Element, kind: str) -> Address:
    element = order.find(f"AddressInfo/{kind}")
    if element is None:
        raise _Unmappable(f"AddressInfo/{kind} is missing")
    values = [_required(element, name, f"{kind}/{name}") if required else _text(element, name)
              for name, required in _ADDRESS_FIELDS]
    return Address(*values)


# -- cancelled orders --------------------------------------------------------------------------


def map_cancellations(channel_id: str, root: etree._Element) -> OrderPage:
    """One Cancellation per OrderNo, whatever number of `<Order>`s its lines come in."""
    page = OrderPage()
    groups: dict[str, list[etree._Element]] = {}
    for element in root.iterfind("Order"):
        order_id = _text(element, "OrderNo")
        if not order_id:
            page.failures.append(Unmappable(channel_id, "", "cancellation", "OrderNo is missing or blank",
                                            xml_text(element)))
            continue
        groups.setdefault(order_id, []).append(element)
    for order_id, elements in groups.items():
        raw = "".join(xml_text(element) for element in elements)
        page.raw[order_id] = raw
        try:
            page.cancellations.append(map_cancellation(channel_id, order_id, elements))
        except _Unmappable as exc:
            page.failures.append(Unmappable(channel_id, order_id, "cancellation", str(exc), raw))
    return page


def map_cancellation(channel_id: str, order_id: str, elements: list[etree._Element]) -> Cancellation:
    lines: dict[str, CancelledLine] = {}
    reason = None
    for element in elements:
        for number, line in enumerate(element.iterfind("OrderLines/OrderLine"), start=1):
            line_id = _required(line, "TransactionId", f"cancelled OrderLine {number} TransactionId")
            sku = _text(line, "ArticleNumber")
            problem = sku_problem(sku)
            if problem is not None:
                raise _Unmappable(f"cancelled OrderLine {line_id} ArticleNumber: {problem}")
            quantity = _quantity(line, f"cancelled OrderLine {line_id}")
            lines.setdefault(line_id, CancelledLine(line_id=line_id, sku=sku, quantity=quantity))
            if reason is None:
                reason = _text(line, "CancellationReason")
    if not lines:
        raise _Unmappable("the cancellation names no OrderLines/OrderLine")
    # Tata CLiQ does not say whether the whole order went; the service decides from the lines.
    return Cancellation(channel_id=channel_id, order_id=order_id, lines=tuple(lines.values()),
                        reason_code=CANCEL_REASON_CODE, reason_text=reason or "", whole_order=False)
