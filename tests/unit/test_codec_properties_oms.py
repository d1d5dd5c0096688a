"""Property-based tests of the OMS codecs: any input either decodes into valid domain values or is
refused with the codec's own error (OmsMessageError for the OMS's messages; ValueError saying
"cannot be an OMS document" / "not a stored ..." for the documents and the JSON Wheel writes), in
words naming what is wrong. A regression example (@example) marks each input hypothesis found
that raised anything else."""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from xml.sax.saxutils import quoteattr

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from wheel.domain import (
    Address,
    Cancellation,
    CancelledLine,
    InventoryItem,
    Order,
    OrderLine,
    Payment,
    PriceItem,
    RangingItem,
)
from wheel.oms import orders
from wheel.oms.ranging import DECODERS
from wheel.oms.xml import OmsMessageError

MAX = 1024 * 1024
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies -----------------------------------------------------------------------------------

# Attribute values an OMS or an attacker could write: plain ids, numbers of every shape, whitespace,
# characters XML forbids, controls, invisible formatting, surrogates' neighbours, very long ones.
ODD_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
odd_text = st.one_of(
    st.sampled_from(["UA", "SKU1", "EAN_1", " SKU1 ", "", "   ", "0", "-1", "+7", "1e3", "NaN", "INF", "1.005",
                     "9999999999.99", "10000000000", "2147483647", "2147483648", "\t", "a\nb", "\u200b", "\x85",
                     "\u202e", "&#1;", "&#x9;", "&amp;", "S" * 129, "\ufeff"]),
    st.text(ODD_CHARS, max_size=12),
    st.from_regex(r"[0-9]{0,14}(\.[0-9]{0,4})?", fullmatch=True),
)
DOCS = {
    "ranging": ("EXTNChannelList", "EXTNChannelItemList", "EXTNChannelItem", {"RangeFlag": "Y"}),
    "deranging": ("EXTNChannelList", "EXTNChannelItemList", "EXTNChannelItem", {"RangeFlag": "N"}),
    "inventory": ("EXTNInventoryList", "EXTNInventoryItemList", "EXTNInventoryItem", {"Quantity": "25"}),
    "pricing": ("EXTNPriceList", "EXTNPriceItemList", "EXTNPriceItem", {"MRP": "1299.00", "SellingPrice": "999.00"}),
}


def _attr(name: str, value: str) -> str:
    """An attribute as an OMS would write it: escaped, but any character kept (an invalid one then
    makes the document not well-formed, as it would be). "&#..;" is left as the reference it is."""
    if value.startswith("&#") or value == "&amp;":
        return f'{name}="{value}"'
    return f"{name}={quoteattr(value)}"


@st.composite
def documents(draw, operation: str):
    root, list_tag, item_tag, extra = DOCS[operation]
    items = []
    for _ in range(draw(st.integers(0, 4))):
        attributes = {"ChannelID": "UA", "EAN": "EAN_1", "ItemID": draw(st.sampled_from(["SKU1", "SKU2", "SKU3"])), **extra}
        for name in draw(st.sets(st.sampled_from(sorted(attributes)), max_size=3)):
            attributes[name] = draw(odd_text)
        for name in draw(st.sets(st.sampled_from(sorted(attributes)), max_size=1)):
            del attributes[name]
        items.append(f"<{item_tag} " + " ".join(_attr(k, v) for k, v in attributes.items()) + "/>")
    lists = draw(st.integers(0, 2))
    body = "".join(f"<{list_tag}>" + "".join(items) + f"</{list_tag}>" for _ in range(max(lists, 1) if items else lists))
    text = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>\n{body}\n</{root}>'
    return text.encode("utf-8")


# -- what a decoded item must be --------------------------------------------------------------------


def _printable_id(value: str) -> bool:
    return (bool(value) and value == value.strip() and len(value) <= 128
            and not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value))


def assert_valid_items(operation: str, items: list) -> None:
    assert items, "a decoder returns at least one item"
    kinds = {"ranging": RangingItem, "deranging": RangingItem, "inventory": InventoryItem, "pricing": PriceItem}
    seen = set()
    for item in items:
        assert isinstance(item, kinds[operation])
        assert all(_printable_id(v) for v in (item.channel_id, item.sku, item.ean)), item
        assert (item.channel_id, item.sku) not in seen
        seen.add((item.channel_id, item.sku))
        if operation in ("ranging", "deranging"):
            assert item.ranged is (operation == "ranging")
        elif operation == "inventory":
            assert type(item.quantity) is int and 0 <= item.quantity <= 2**31 - 1
        else:
            mrp, selling = item.price.mrp, item.price.selling_price
            for value in (mrp, selling):
                assert isinstance(value, Decimal) and value.is_finite() and 0 < value <= Decimal("9999999999.99")
                assert value == value.quantize(Decimal("0.01")) and value.as_tuple().exponent == -2
            assert selling <= mrp


def decode_or_refuse(operation: str, body: bytes) -> None:
    try:
        items = DECODERS[operation](body, max_bytes=MAX)
    except OmsMessageError as exc:
        assert str(exc).strip(), "an OmsMessageError says why"
        return
    assert_valid_items(operation, items)


# -- the four item decoders -------------------------------------------------------------------------


@PROPERTY
@given(st.sampled_from(sorted(DECODERS)), st.data())
def test_structured_documents_decode_or_are_refused_in_words(operation, data):
    decode_or_refuse(operation, data.draw(documents(operation)))


@PROPERTY
@given(st.sampled_from(sorted(DECODERS)), st.binary(max_size=300))
@example("ranging", b"\xef\xbb\xbf")
@example("inventory", b"\xff\xfe<\x00")
@example("pricing", b"<\x00")
def test_random_bytes_decode_or_are_refused_in_words(operation, body):
    decode_or_refuse(operation, body)


@PROPERTY
@given(st.sampled_from(sorted(DECODERS)), st.binary(max_size=60), st.binary(max_size=60))
def test_random_bytes_inside_a_document_are_refused_or_decoded(operation, before, after):
    root, list_tag, item_tag, extra = DOCS[operation]
    attributes = " ".join(f'{k}="{v}"' for k, v in {"ChannelID": "UA", "EAN": "E1", "ItemID": "S1", **extra}.items())
    body = (f"<{root}><{list_tag}>".encode() + before + f"<{item_tag} {attributes}/>".encode() + after
            + f"</{list_tag}></{root}>".encode())
    decode_or_refuse(operation, body)


ids = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=20)


@PROPERTY
@given(st.lists(st.tuples(ids, ids, ids, st.integers(0, 2**31 - 1),
                          st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999999999.99"), places=2)),
                min_size=1, max_size=8, unique_by=lambda t: (t[0], t[1])))
def test_valid_documents_decode_to_exactly_their_values(rows):
    inventory = ("<EXTNInventoryList><EXTNInventoryItemList>" + "".join(
        f'<EXTNInventoryItem ChannelID="{c}" EAN="{e}" ItemID="{s}" Quantity="{q}"/>' for c, s, e, q, _ in rows)
        + "</EXTNInventoryItemList></EXTNInventoryList>").encode()
    assert DECODERS["inventory"](inventory, max_bytes=MAX) == [InventoryItem(c, s, e, q) for c, s, e, q, _ in rows]
    pricing = ("<EXTNPriceList><EXTNPriceItemList>" + "".join(
        f'<EXTNPriceItem ChannelID="{c}" EAN="{e}" ItemID="{s}" MRP="{m}" SellingPrice="{m}"/>' for c, s, e, _, m in rows)
        + "</EXTNPriceItemList></EXTNPriceList>").encode()
    decoded = DECODERS["pricing"](pricing, max_bytes=MAX)
    assert [(i.sku, i.price.mrp, i.price.selling_price) for i in decoded] == [(s, m, m) for _, s, _, _, m in rows]


# -- the order and cancellation documents Wheel writes -----------------------------------------------

text_values = st.one_of(st.sampled_from(["", " ", "Asha", "MG Road", "560001", "\x00", "\x1b[31m", "\ud800"]),
                        st.text(max_size=10))
money = st.one_of(st.decimals(allow_nan=True, allow_infinity=True), st.sampled_from([Decimal("900.0"), Decimal("1E+3"),
                                                                                     Decimal("-1"), Decimal("0.001")]))
addresses = st.builds(Address, text_values, text_values, text_values, text_values, text_values, text_values, text_values)
order_lines = st.builds(OrderLine, text_values, st.one_of(st.just("SKU1"), text_values), st.integers(-2, 10**12), money)
domain_orders = st.builds(Order, st.just("UA"), st.one_of(st.just("ORD-1"), text_values), addresses, addresses,
                          st.lists(st.builds(Payment, money, text_values), max_size=2).map(tuple),
                          st.lists(order_lines, max_size=3).map(tuple))
cancelled_lines = st.builds(CancelledLine, text_values, st.one_of(st.just("SKU1"), text_values), st.integers(-2, 10**12))
domain_cancellations = st.builds(Cancellation, st.just("UA"), st.one_of(st.just("ORD-1"), text_values),
                                 st.lists(cancelled_lines, max_size=3).map(tuple), text_values, text_values, st.booleans())
headers = st.dictionaries(st.sampled_from(["EnterpriseCode", "DocumentType", "xmlns", "1bad", "OrderNo", "a:b"]),
                          text_values, max_size=2)


def _written_or_refused(write, what: str):
    try:
        return write()
    except ValueError as exc:
        assert "cannot be an OMS document" in str(exc) and what in str(exc), str(exc)
        return None


@PROPERTY
@given(domain_orders, headers)
def test_order_documents_are_valid_and_carry_the_order_or_are_refused_in_words(order, header):
    body = _written_or_refused(lambda: orders.order_document(order, header), f"order {order.order_id!r}")
    if body is None:
        return
    assert orders.validate_document(body) == "order"
    root = etree.fromstring(body)
    assert root.get("OrderNo") == order.order_id
    assert [i.get("ItemID") for i in root.iter("Item")] == [line.sku for line in order.lines]
    assert [Decimal(p.get("LineTotal")) for p in root.iter("LinePriceInfo")] == [line.line_total for line in order.lines]


@PROPERTY
@given(domain_cancellations, st.booleans(), headers)
def test_cancellation_documents_are_valid_or_are_refused_in_words(cancellation, whole, header):
    body = _written_or_refused(lambda: orders.cancellation_document(cancellation, whole_order=whole, header=header),
                               f"cancellation of order {cancellation.order_id!r}")
    if body is None:
        return
    assert orders.validate_document(body) == "cancellation"
    root = etree.fromstring(body)
    assert root.get("Action") == ("CANCEL" if whole else "MODIFY")
    if not whole:
        assert [(i.get("ItemID")) for i in root.iter("Item")] == [line.sku for line in cancellation.lines]


@PROPERTY
@given(st.binary(max_size=300))
def test_validate_document_reads_any_bytes_or_refuses_them(body):
    try:
        kind = orders.validate_document(body)
    except OmsMessageError as exc:
        assert str(exc).strip()
        return
    assert kind in ("order", "cancellation")


# -- the JSON Wheel stores orders and cancellations as ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
