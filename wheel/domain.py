"""Domain types that cross the adapter boundary: frozen, Decimal money, free of JSON and XML."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

FIELDS = ("ranged", "quantity", "price")
# The operation (and event name prefix) a field's change belongs to.
OPERATION_OF_FIELD = {"quantity": "inventory", "price": "pricing"}


class ChannelItem(Protocol):
    channel_id: str
    sku: str
    ean: str


@dataclass(frozen=True)
class RangingItem:
    """One SKU of one channel to list (ranged) or unlist (deranged)."""

    channel_id: str
    sku: str
    ean: str
    ranged: bool = True

    def as_dict(self) -> dict[str, str]:
        return {"sku": self.sku, "ean": self.ean}


@dataclass(frozen=True)
class InventoryItem:
    channel_id: str
    sku: str
    ean: str
    quantity: int

    def as_dict(self) -> dict:
        return {"sku": self.sku, "ean": self.ean, "quantity": self.quantity}


@dataclass(frozen=True)
class Price:
    mrp: Decimal
    selling_price: Decimal

    def as_dict(self) -> dict[str, str]:
        return {"mrp": str(self.mrp), "selling_price": str(self.selling_price)}


@dataclass(frozen=True)
class PriceItem:
    channel_id: str
    sku: str
    ean: str
    price: Price

    def as_dict(self) -> dict:
        return {"sku": self.sku, "ean": self.ean, **self.price.as_dict()}


@dataclass(frozen=True)
class ListingUpdate:
    """What to push for one SKU: only the fields that need pushing (None: leave it as it is).

    `quantity` is the effective quantity: 0 while deranged, buffer stock and cap applied.
    """

    sku: str
    ean: str
    ranged: bool | None = None
    quantity: int | None = None
    price: Price | None = None
    # Context, not a change: whether the SKU is meant to be listed now (Flipkart sends the
    # location status with every inventory update).
    listed: bool = True

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(f for f in FIELDS if getattr(self, f) is not None)


@dataclass(frozen=True)
class ItemResult:
    """The marketplace's verdict on one field of one SKU in a call."""

    sku: str
    field: str  # "ranged" | "quantity" | "price"
    ok: bool
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class MarketplaceListing:
    """What a marketplace holds for a SKU (for a resync); None where it does not say."""

    sku: str
    ranged: bool | None = None
    quantity: int | None = None
    price: Price | None = None


T = TypeVar("T", bound=ChannelItem)


def group_by_channel(items: list[T]) -> dict[str, list[T]]:
    """Items per channel, in the order the OMS sent them."""
    grouped: dict[str, list[T]] = defaultdict(list)
    for item in items:
        grouped[item.channel_id].append(item)
    return dict(grouped)
