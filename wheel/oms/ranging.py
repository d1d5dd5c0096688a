"""The OMS's item documents (ranging, deranging, inventory, pricing) into domain items."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from lxml import etree

from wheel.domain import DERANGING, INVENTORY, PRICING, RANGING, InventoryItem, Price, PriceItem, RangingItem
from wheel.oms.xml import OmsMessageError, parse, validate

T = TypeVar("T", RangingItem, InventoryItem, PriceItem)


def _decode(body: bytes, max_bytes: int, schema: str, tag: str, build: Callable[[etree._Element, str, str, str], T]) -> list[T]:
    """Validate against the schema, then the domain rules; items in document order, each
    (channel, SKU) once: the same item twice is kept once, the same SKU with two values is an error."""
    root = parse(body, max_bytes=max_bytes)
    validate(root, schema)
    items: list[T] = []
    seen: dict[tuple[str, str], tuple[T, int]] = {}
    for element in root.iter(tag):
        # XML's own white space only (str.strip() would also take U+0085 and the like away, and
        # turn an id of control characters into an empty one that _check_printable cannot see).
        ids = {name: element.get(name).strip(XML_SPACE) for name in ("ChannelID", "ItemID", "EAN")}
        _check_printable(element, ids)
        item = build(element, ids["ChannelID"], ids["ItemID"], ids["EAN"])
        key = (item.channel_id, item.sku)
        if key in seen:
            previous, line = seen[key]
            if previous != item:
                raise OmsMessageError(
                    f"line {element.sourceline}: item {item.sku} on channel {item.channel_id} is "
                    f"{_describe(item)}, but line {line} gave it {_describe(previous)}"
                )
            continue
        seen[key] = (item, element.sourceline)
        items.append(item)
    if not items:
        # The OMS's schema allows an empty item list (beside others), so the schema passes a
        # document whose lists are all empty; as the original middleware did, refuse it.
        raise OmsMessageError(f"{schema}: the document names no {tag} (every item list is empty)")
    return items


# White space as XML defines it (https://www.w3.org/TR/xml/#NT-S).
XML_SPACE = " \t\r\n"
# Unicode categories no OMS id holds: control characters (a tab, U+0085, an escape) and invisible
# formatting ones (a zero-width space, a right-to-left override, a soft hyphen). The OMS's ids are
# printable (see sku_problem in wheel/domain.py); with one of these a SKU looks like another, or
# like nothing, to a person and to a marketplace. The schema's NonBlank cannot say so: XML Schema
# patterns have no "and", and the OMS's ids may hold inner spaces.
_UNPRINTABLE = {"Cc": "control character", "Cf": "invisible formatting character"}


def _check_printable(element: etree._Element, ids: dict[str, str]) -> None:
    for name, value in ids.items():
        bad = next((ch for ch in value if unicodedata.category(ch) in _UNPRINTABLE), None)
        if bad is not None:
            raise OmsMessageError(
                f"line {element.sourceline}: item {ids['ItemID']!r} on channel {ids['ChannelID']!r}: attribute "
                f"{name} holds the {_UNPRINTABLE[unicodedata.category(bad)]} U+{ord(bad):04X}; the OMS's ids are "
                "printable characters only"
            )


def _describe(item) -> str:
    if isinstance(item, InventoryItem):
        return f"EAN {item.ean}, quantity {item.quantity}"
    if isinstance(item, PriceItem):
        return f"EAN {item.ean}, MRP {item.price.mrp}, selling price {item.price.selling_price}"
    return f"EAN {item.ean}"


def decode_ranging(body: bytes, *, max_bytes: int) -> list[RangingItem]:
    return _decode(body, max_bytes, "ranging.xsd", "EXTNChannelItem",
                   lambda e, channel, sku, ean: RangingItem(channel, sku, ean, True))


def decode_deranging(body: bytes, *, max_bytes: int) -> list[RangingItem]:
    return _decode(body, max_bytes, "deranging.xsd", "EXTNChannelItem",
                   lambda e, channel, sku, ean: RangingItem(channel, sku, ean, False))


def decode_inventory(body: bytes, *, max_bytes: int) -> list[InventoryItem]:
    return _decode(body, max_bytes, "inventory.xsd", "EXTNInventoryItem",
                   lambda e, channel, sku, ean: InventoryItem(channel, sku, ean, int(e.get("Quantity"))))


def _price(element: etree._Element, channel: str, sku: str, ean: str) -> PriceItem:
    mrp, selling = Decimal(element.get("MRP").strip()), Decimal(element.get("SellingPrice").strip())
    if selling > mrp:
        raise OmsMessageError(
            f"line {element.sourceline}: item {sku} on channel {channel}: selling price {selling} "
            f"is above the MRP {mrp} (the rule: SellingPrice <= MRP)"
        )
    return PriceItem(channel, sku, ean, Price(mrp.quantize(Decimal("0.01")), selling.quantize(Decimal("0.01"))))


def decode_pricing(body: bytes, *, max_bytes: int) -> list[PriceItem]:
    return _decode(body, max_bytes, "pricing.xsd", "EXTNPriceItem", _price)


DECODERS = {
    RANGING: decode_ranging,
    DERANGING: decode_deranging,
    INVENTORY: decode_inventory,
    PRICING: decode_pricing,
}
