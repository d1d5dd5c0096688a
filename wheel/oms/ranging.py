"""The OMS's ranging document (EXTNChannelList) into domain items."""

from __future__ import annotations

from wheel.domain import RangingItem
from wheel.oms.xml import OmsMessageError, parse, validate


def decode_ranging(body: bytes, *, max_bytes: int) -> list[RangingItem]:
    """Validate against ranging.xsd, then the domain rules; items in document order."""
    root = parse(body, max_bytes=max_bytes)
    validate(root, "ranging.xsd")
    items: list[RangingItem] = []
    seen: dict[tuple[str, str], RangingItem] = {}
    for element in root.iter("EXTNChannelItem"):
        item = RangingItem(
            channel_id=element.get("ChannelID").strip(),
            sku=element.get("ItemID").strip(),
            ean=element.get("EAN").strip(),
        )
        previous = seen.get((item.channel_id, item.sku))
        if previous is not None:
            if previous.ean != item.ean:
                raise OmsMessageError(
                    f"line {element.sourceline}: item {item.sku} on channel {item.channel_id} "
                    f"has EAN {item.ean}, but an earlier line gave it EAN {previous.ean}"
                )
            continue  # the same item twice: range it once
        seen[(item.channel_id, item.sku)] = item
        items.append(item)
    return items
