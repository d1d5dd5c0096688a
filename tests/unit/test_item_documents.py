"""The four OMS item documents (ranging, deranging, inventory, pricing), attribute by attribute:
what the OMS's own schema allows is accepted, and only the project's stated limits are stricter.

The OMS's published schema is the ranging one (github demystifyfp/BlogSamples,
clojure/wheel/resources/oms/message_schema/ranging.xsd); the other three documents follow its shape.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from wheel.domain import InventoryItem, Price, PriceItem, RangingItem
from wheel.oms.ranging import DECODERS
from wheel.oms.xml import OmsMessageError

SAMPLES = Path(__file__).parents[1] / "samples"
MAX = 1024 * 1024

# kind -> (root, list element, item element, the item's own required attributes, what the sample decodes to)
DOCUMENTS = {
    "ranging": ("EXTNChannelList", "EXTNChannelItemList", "EXTNChannelItem", {"RangeFlag": "Y"},
                RangingItem("UA", "SKU1", "EAN_1", True)),
    "deranging": ("EXTNChannelList", "EXTNChannelItemList", "EXTNChannelItem", {"RangeFlag": "N"},
                  RangingItem("UA", "SKU1", "EAN_1", False)),
    "inventory": ("EXTNInventoryList", "EXTNInventoryItemList", "EXTNInventoryItem", {"Quantity": "25"},
                  InventoryItem("UA", "SKU1", "EAN_1", 25)),
    "pricing": ("EXTNPriceList", "EXTNPriceItemList", "EXTNPriceItem", {"MRP": "1299.00", "SellingPrice": "999.00"},
                PriceItem("UA", "SKU1", "EAN_1", Price(Decimal("1299.00"), Decimal("999.00")))),
}
KINDS = sorted(DOCUMENTS)


def item(kind: str, **attributes: str | None) -> str:
    _, _, tag, own, _ = DOCUMENTS[kind]
    values = {"ChannelID": "UA", "EAN": "EAN_1", "ItemID": "SKU1", **own, **attributes}
    return f"<{tag} " + " ".join(f'{k}="{v}"' for k, v in values.items() if v is not None) + "/>"


def document(kind: str, *lists: str, list_attributes: str = "", root_attributes: str = "") -> bytes:
    root, list_tag, _, _, _ = DOCUMENTS[kind]
    body = "".join(f"<{list_tag}{list_attributes}>{items}</{list_tag}>" for items in lists)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{root_attributes}>{body}</{root}>'.encode()


def decode(kind: str, body: bytes):
    return DECODERS[kind](body, max_bytes=MAX)


def refused(kind: str, body: bytes) -> str:
    with pytest.raises(OmsMessageError) as info:
        decode(kind, body)
    return str(info.value)


# -- IgnoreOrdering: optional on the item list in the OMS's schema ------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_sample_with_ignore_ordering_decodes_like_the_sample_without(kind):
    plain = (SAMPLES / f"{kind}.xml").read_bytes()
    with_attribute = (SAMPLES / f"{kind}-ignore-ordering.xml").read_bytes()
    assert b'IgnoreOrdering="Y"' in with_attribute
    assert decode(kind, with_attribute) == decode(kind, plain)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", ["Y", "N", ""])
def test_ignore_ordering_on_the_item_list_is_accepted_whatever_its_value(kind, value):
    # The OMS's schema types it xs:string: any value, the empty one too. Wheel keeps no order
    # within a message that it could ignore (the same SKU twice with two values is refused).
    body = document(kind, item(kind), list_attributes=f' IgnoreOrdering="{value}"')
    assert decode(kind, body) == [DOCUMENTS[kind][4]]


@pytest.mark.parametrize("kind", KINDS)
def test_ignore_ordering_on_the_root_is_refused_as_the_oms_schema_refuses_it(kind):
    message = refused(kind, document(kind, item(kind), root_attributes=' IgnoreOrdering="Y"'))
    assert "IgnoreOrdering" in message and "not allowed" in message


@pytest.mark.parametrize("kind", KINDS)
def test_another_attribute_on_the_item_list_is_refused(kind):
    message = refused(kind, document(kind, item(kind), list_attributes=' SortOrder="1"'))
    assert "SortOrder" in message and "not allowed" in message


# -- lists and items -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_item_list_beside_a_full_one_is_accepted(kind):
    # The OMS's schema has minOccurs="0" on the item: an empty list is a valid document part.
    assert decode(kind, document(kind, "", item(kind))) == [DOCUMENTS[kind][4]]


@pytest.mark.parametrize("kind", KINDS)
def test_a_document_that_names_no_item_at_all_is_refused(kind):
    _, _, tag, _, _ = DOCUMENTS[kind]
    message = refused(kind, document(kind, "", ""))
    assert f"names no {tag}" in message


@pytest.mark.parametrize("kind", KINDS)
def test_item_attributes_the_oms_does_not_define_are_ignored(kind):
    # Laxer than the OMS's schema (which has no anyAttribute): an attribute added on the OMS's
    # side later must not stop the whole message.
    assert decode(kind, document(kind, item(kind, Note="x"))) == [DOCUMENTS[kind][4]]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("attribute", ["ChannelID", "EAN", "ItemID"])
def test_a_missing_identifier_is_refused(kind, attribute):
    message = refused(kind, document(kind, item(kind, **{attribute: None})))
    assert attribute in message and "required" in message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("attribute", ["ChannelID", "EAN", "ItemID"])
def test_identifiers_up_to_128_characters_are_accepted_and_longer_ones_refused(kind, attribute):
    # Stricter than the OMS's schema (no maximum); see NonBlank in the schemas for why.
    accepted = decode(kind, document(kind, item(kind, **{attribute: "X" * 128})))
    assert len(accepted) == 1
    message = refused(kind, document(kind, item(kind, **{attribute: "X" * 129})))
    assert f"attribute '{attribute}'" in message and "128" in message


# -- the values each document carries -------------------------------------------------------------


@pytest.mark.parametrize("kind, flag", [("ranging", "N"), ("deranging", "Y"), ("ranging", "y"), ("deranging", "")])
def test_range_flag_must_match_the_document(kind, flag):
    assert "RangeFlag" in refused(kind, document(kind, item(kind, RangeFlag=flag)))


@pytest.mark.parametrize("quantity, ok", [("0", True), ("2147483647", True), ("2147483648", False), ("-1", False),
                                          ("1.5", False), ("", False)])
def test_quantity_is_a_whole_number_that_fits_the_column(quantity, ok):
    body = document("inventory", item("inventory", Quantity=quantity))
    if ok:
        assert decode("inventory", body)[0].quantity == int(quantity)
    else:
        assert "Quantity" in refused("inventory", body)


@pytest.mark.parametrize("attribute", ["MRP", "SellingPrice"])
@pytest.mark.parametrize("value, ok", [("9999999999.99", True), ("0.01", True), ("5", True),
                                       ("10000000000", False), ("99999999999", False), ("999999999999", False),
                                       ("0", False), ("1.005", False), ("-1", False)])
def test_money_is_positive_with_at_most_2_decimals_and_fits_the_column(attribute, value, ok):
    values = {"MRP": "9999999999.99", "SellingPrice": "0.01", attribute: value}
    body = document("pricing", item("pricing", **values))
    if ok:
        [priced] = decode("pricing", body)
        assert getattr(priced.price, "mrp" if attribute == "MRP" else "selling_price") == Decimal(value)
    else:
        assert f"attribute '{attribute}'" in refused("pricing", body)
