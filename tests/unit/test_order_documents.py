"""The OMS order and cancellation documents: exact XML, the XSDs' rules, header names, JSON round trips."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from lxml import etree

from wheel.domain import Address, Cancellation, CancelledLine, Order, OrderLine, Payment
from wheel.oms.orders import (
    cancellation_document,
    order_document,
    order_to_json,
    validate_document,
)
from wheel.oms.xml import OmsMessageError

ADDRESS = Address(first_name="Tamizhvendan", last_name="Sembiyan", line1="Plot No 222",
                  line2="Ashok Nagar 42nd Street", city="Chennai", state="TamilNadu", zip_code="600001")
ORDER = Order(
    channel_id="TATACLIQ", order_id="181219-001-345786", bill_to=ADDRESS, ship_to=ADDRESS,
    payments=(Payment(Decimal("900.0"), "000000-1545216772601"),),
    lines=(OrderLine(line_id="200058001702351", sku="200374", quantity=1, line_total=Decimal("900.0")),),
)
SAMPLE = b"""
<Order OrderNo="181219-001-345786">
  <PersonInfoBillTo City="Chennai" FirstName="Tamizhvendan" LastName="Sembiyan" State="TamilNadu" ZipCode="600001">
    <Extn IRLAddressLine1="Plot No 222" IRLAddressLine2="Ashok Nagar 42nd Street"/>
  </PersonInfoBillTo>
  <PersonInfoShipTo City="Chennai" FirstName="Tamizhvendan" LastName="Sembiyan" State="TamilNadu" ZipCode="600001">
    <Extn IRLAddressLine1="Plot No 222" IRLAddressLine2="Ashok Nagar 42nd Street"/>
  </PersonInfoShipTo>
  <PaymentDetailsList><PaymentDetails ProcessedAmount="900.0" Reference1="000000-1545216772601"/></PaymentDetailsList>
  <OrderLines><OrderLine><Item ItemID="200374"/><LinePriceInfo LineTotal="900.0"/></OrderLine></OrderLines>
</Order>
"""
CANCELLATION = Cancellation(
    channel_id="TATACLIQ", order_id="181219-001-345786",
    lines=(CancelledLine("L1", "SKU1", 2), CancelledLine("L2", "SKU2", 1)),
    reason_code="buyer_cancellation", reason_text="Buyer changed their mind",
)


def canonical(body: bytes) -> bytes:
    """C14N (sorted attributes) of the document with whitespace-only text dropped."""
    root = etree.fromstring(body, etree.XMLParser(remove_blank_text=True))
    return etree.tostring(root, method="c14n")


# -- the order document -------------------------------------------------------------------------


def test_the_tata_cliq_sample_gives_exactly_the_oms_document():
    body = order_document(ORDER)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Order ')
    assert canonical(body) == canonical(SAMPLE)
    assert validate_document(body) == "order"


def test_header_attributes_follow_order_no():
    body = order_document(ORDER, {"EnterpriseCode": "ACME", "EntryType": "TATACLIQ"})
    root = etree.fromstring(body)
    assert list(root.attrib.items()) == [
        ("OrderNo", "181219-001-345786"), ("EnterpriseCode", "ACME"), ("EntryType", "TATACLIQ")]
    assert validate_document(body) == "order"


def test_a_quantity_other_than_one_is_ordered_qty_and_an_empty_line2_is_written_empty():
    order = replace(ORDER, ship_to=replace(ADDRESS, line2=""),
                    lines=(*ORDER.lines, OrderLine("L2", "SKU-2", 2, Decimal("1000.50"))))
    body = order_document(order)
    root = etree.fromstring(body)
    lines = root.findall("OrderLines/OrderLine")
    assert [line.get("OrderedQty") for line in lines] == [None, "2"]
    assert lines[1].find("LinePriceInfo").get("LineTotal") == "1000.50"
    assert root.find("PersonInfoShipTo/Extn").get("IRLAddressLine2") == ""
    assert validate_document(body) == "order"


def test_money_is_never_a_float_and_an_exponent_is_written_as_digits():
    assert b'LineTotal="1000"' in order_document(replace(ORDER, lines=(replace(ORDER.lines[0], line_total=Decimal("1E+3")),)))
    with pytest.raises(ValueError, match="181219-001-345786.*Decimal, not float"):
        order_document(replace(ORDER, payments=(Payment(900.0, "R"),)))  # type: ignore[arg-type]


@pytest.mark.parametrize("change, words", [
    ({"order_id": " "}, "OrderNo"),
    ({"lines": ()}, "OrderLines"),
    ({"lines": (OrderLine("L1", "SKU 1", 1, Decimal("1")),)}, "ItemID"),
    ({"lines": (OrderLine("L1", "SKU1", 0, Decimal("1")),)}, "OrderedQty"),
    ({"lines": (OrderLine("L1", "SKU1", 1, Decimal("-1")),)}, "LineTotal"),
    ({"payments": (Payment(Decimal("NaN"), "R"),)}, "ProcessedAmount"),
])
def test_an_order_the_xsd_refuses_is_a_value_error_naming_the_order(change, words):
    with pytest.raises(ValueError) as info:
        order_document(replace(ORDER, **change))
    assert "of channel TATACLIQ cannot be an OMS document" in str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize("name", ["1st", "ns:Code", "Has Space", "", "xmlns", "XmlThing", "A=B"])
def test_header_names_must_be_xml_names(name):
    with pytest.raises(ValueError, match="not an XML name"):
        order_document(ORDER, {name: "x"})


@pytest.mark.parametrize("name", ["OrderNo", "Action"])
def test_header_names_cannot_replace_the_documents_own(name):
    with pytest.raises(ValueError, match="would replace"):
        order_document(ORDER, {name: "x"})


def test_header_values_must_be_xml_strings():
    with pytest.raises(ValueError, match="181219-001-345786"):
        order_document(ORDER, {"EntryType": "bad\x00value"})


# -- the cancellation documents -----------------------------------------------------------------


def test_a_whole_order_cancellation_is_a_cancel_without_lines():
    body = cancellation_document(CANCELLATION, whole_order=True, header={"EnterpriseCode": "ACME"})
    assert canonical(body) == canonical(
        b'<Order Action="CANCEL" OrderNo="181219-001-345786" ModificationReasonCode="buyer_cancellation" '
        b'ModificationReasonText="Buyer changed their mind" EnterpriseCode="ACME"/>')
    assert list(etree.fromstring(body).attrib)[:2] == ["Action", "OrderNo"]
    assert validate_document(body) == "cancellation"


def test_a_partial_cancellation_is_a_modify_with_the_lines_to_cancel():
    body = cancellation_document(CANCELLATION, whole_order=False)
    assert canonical(body) == canonical(b"""
        <Order Action="MODIFY" OrderNo="181219-001-345786" ModificationReasonCode="buyer_cancellation"
               ModificationReasonText="Buyer changed their mind">
          <OrderLines>
            <OrderLine Action="CANCEL" Quantity="2"><Item ItemID="SKU1"/></OrderLine>
            <OrderLine Action="CANCEL" Quantity="1"><Item ItemID="SKU2"/></OrderLine>
          </OrderLines>
        </Order>""")
    assert validate_document(body) == "cancellation"


def test_a_modify_without_lines_is_an_error():
    with pytest.raises(ValueError, match="cancellation of order '181219-001-345786'.*no lines"):
        cancellation_document(replace(CANCELLATION, lines=()), whole_order=False)


@pytest.mark.parametrize("change, header, words", [
    ({"order_id": ""}, {}, "OrderNo"),
    ({"lines": (CancelledLine("L1", "SKU1", 0),)}, {}, "Quantity"),
    ({}, {"ModificationReasonCode": "x"}, "would replace"),
])
def test_a_bad_cancellation_is_a_value_error(change, header, words):
    with pytest.raises(ValueError, match=words):
        cancellation_document(replace(CANCELLATION, **change), whole_order=False, header=header)


# -- validate_document: the XSDs on their own ---------------------------------------------------


def refused(body: bytes, max_bytes: int = 1_000_000) -> str:
    with pytest.raises(OmsMessageError) as info:
        validate_document(body, max_bytes=max_bytes)
    return str(info.value)


def test_the_order_xsd_refuses_a_float_ish_amount_and_a_missing_or_empty_order_no():
    for bad in (b'LineTotal="1e3"', b'LineTotal="900,0"', b'LineTotal=""'):
        assert "order.xsd" in refused(SAMPLE.replace(b'LineTotal="900.0"', bad))
    assert "ProcessedAmount" in refused(SAMPLE.replace(b'ProcessedAmount="900.0"', b'ProcessedAmount="9E2"'))
    assert "OrderNo" in refused(SAMPLE.replace(b' OrderNo="181219-001-345786"', b""))
    assert "OrderNo" in refused(SAMPLE.replace(b'OrderNo="181219-001-345786"', b'OrderNo=""'))
    assert "IRLAddressLine2" in refused(SAMPLE.replace(b' IRLAddressLine2="Ashok Nagar 42nd Street"', b"", 1))


def test_the_cancellation_xsd_refuses_a_missing_order_no_a_bad_quantity_and_a_mismatched_action():
    head = b'<Order Action="MODIFY" ModificationReasonCode="c" ModificationReasonText="t"'
    line = b'<OrderLines><OrderLine Action="CANCEL" Quantity="%s"><Item ItemID="S"/></OrderLine></OrderLines>'
    assert "OrderNo" in refused(head + b">" + line % b"1" + b"</Order>")
    assert "OrderNo" in refused(head + b' OrderNo="">' + line % b"1" + b"</Order>")
    for quantity in (b"0", b"1.5", b"1e1", b"-1"):
        assert "Quantity" in refused(head + b' OrderNo="O1">' + line % quantity + b"</Order>")
    assert "no lines" in refused(head + b' OrderNo="O1"/>')
    assert "takes no OrderLines" in refused(head.replace(b"MODIFY", b"CANCEL") + b' OrderNo="O1">' + line % b"1" + b"</Order>")
    assert "Action" in refused(head.replace(b"MODIFY", b"DELETE") + b' OrderNo="O1"/>')


def test_validate_document_uses_the_hardened_parser():
    assert "over the 10-byte limit" in refused(SAMPLE, max_bytes=10)
    assert "DOCTYPE" in refused(b'<!DOCTYPE Order [<!ENTITY x "y">]><Order OrderNo="&x;"/>')
    assert "not well-formed" in refused(b"<Order")
    assert "not <Order>" in refused(b"<Orders/>")


# -- JSON -------------------------------------------------------------------------------------


def test_an_order_is_stored_as_json_exactly():
    # The orders.document column: money as the strings it came as ("900.0" stays "900.0").
    order = replace(ORDER, lines=(*ORDER.lines, OrderLine("L2", "SKU2", 3, Decimal("1E+3"))))
    data = json.loads(json.dumps(order_to_json(order)))
    assert data["payments"] == [{"amount": "900.0", "reference": "000000-1545216772601"}]
    assert data["lines"] == [
        {"line_id": "200058001702351", "sku": "200374", "quantity": 1, "line_total": "900.0"},
        {"line_id": "L2", "sku": "SKU2", "quantity": 3, "line_total": "1E+3"},
    ]
    assert (data["channel_id"], data["order_id"], data["bill_to"]["city"]) == ("TATACLIQ", "181219-001-345786", "Chennai")
