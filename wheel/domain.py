"""Domain types that cross the adapter boundary: frozen, free of JSON and XML."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class RangingItem:
    """One SKU of one channel to list (ranged) or unlist (deranged)."""

    channel_id: str
    sku: str
    ean: str

    def as_dict(self) -> dict[str, str]:
        return {"sku": self.sku, "ean": self.ean}


def group_by_channel(items: list[RangingItem]) -> dict[str, list[RangingItem]]:
    """Items per channel, in the order the OMS sent them."""
    grouped: dict[str, list[RangingItem]] = defaultdict(list)
    for item in items:
        grouped[item.channel_id].append(item)
    return dict(grouped)
