"""Domain types that cross the adapter boundary: frozen, Decimal money, free of JSON and XML."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

FIELDS = ("ranged", "quantity", "price")

# The OMS's operations (docs/contracts.md), each also the event name prefix of its changes.
RANGING, DERANGING, INVENTORY, PRICING = "ranging", "deranging", "inventory", "pricing"
OPERATIONS = (RANGING, DERANGING, INVENTORY, PRICING)
# The listing field each operation sets.
FIELD_OF_OPERATION = {RANGING: "ranged", DERANGING: "ranged", INVENTORY: "quantity", PRICING: "price"}


def operation_of(field_name: str, ranged: bool | None) -> str:
    """The operation a change of `field_name` belongs to (a ranged change: by its new value)."""
    if field_name == "ranged":
        return RANGING if ranged else DERANGING
    return INVENTORY if field_name == "quantity" else PRICING


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


# -- orders and cancellations (marketplace -> OMS) ---------------------------------------------

# The scheduled pulls (jobs) of orders and cancellations.
ORDERS, CANCELLATIONS = "orders", "cancellations"
ORDER_JOBS = (ORDERS, CANCELLATIONS)


@dataclass(frozen=True)
class Address:
    first_name: str
    last_name: str
    line1: str
    line2: str
    city: str
    state: str
    zip_code: str


@dataclass(frozen=True)
class OrderLine:
    line_id: str  # the marketplace's id for the line (Tata CLiQ TransactionId, Amazon orderItemId, ...)
    sku: str  # the OMS's item id
    quantity: int
    line_total: Decimal


@dataclass(frozen=True)
class Payment:
    amount: Decimal
    reference: str


@dataclass(frozen=True)
class Order:
    """A marketplace order as the OMS receives it; every marketplace maps into this."""

    channel_id: str
    order_id: str  # the marketplace's order number
    bill_to: Address
    ship_to: Address
    payments: tuple[Payment, ...]
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True)
class CancelledLine:
    line_id: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class Cancellation:
    """Lines of an order the marketplace cancelled. `whole_order` is the marketplace's word that
    every line went; Wheel also treats a cancellation of every line it knows as a whole one."""

    channel_id: str
    order_id: str
    lines: tuple[CancelledLine, ...]
    reason_code: str
    reason_text: str
    whole_order: bool = False


@dataclass(frozen=True)
class CancellationRequest:
    """A buyer asking the seller to cancel lines of an order that nobody has cancelled yet (Amazon's
    item `cancellation.cancellationRequest`). Not a cancellation: the seller decides, before shipping."""

    channel_id: str
    order_id: str
    lines: tuple[CancelledLine, ...]
    requester: str
    reason: str


@dataclass(frozen=True)
class Unmappable:
    """A marketplace order (or cancellation) that cannot become an OMS document, and why. It is
    stored with its raw form, so nothing is lost."""

    channel_id: str
    order_id: str
    kind: str  # "order" | "cancellation"
    reason: str
    raw: object  # JSON-able: the marketplace's record as received


def sku_problem(sku: object) -> str | None:
    """Why a marketplace's SKU cannot be an OMS item id (None: it can). The OMS's item ids are
    1-40 printable characters without spaces."""
    if not isinstance(sku, str) or not sku.strip():
        return "the line has no SKU"
    if len(sku) > 40:
        return f"SKU {sku[:40]!r}... is longer than 40 characters"
    if any(ch.isspace() or not ch.isprintable() for ch in sku):
        return f"SKU {sku!r} has spaces or control characters"
    return None
