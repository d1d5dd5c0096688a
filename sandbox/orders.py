"""Orders and cancellations in the sandbox: created on demand (`POST /_sandbox/orders`,
`POST /_sandbox/cancellations`), kept per channel, and served by each marketplace's emulator
through that marketplace's own paging and quota rules.

Times are epoch seconds (float). An order has lines; a cancellation cancels some or all of
them. Every change moves the order's `updated` time, as Amazon's lastUpdatedTime does.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

FIRST_NAMES = ("Tamizhvendan", "Priya", "Arjun", "Meera", "Rahul", "Ananya", "Vikram", "Kavya")
LAST_NAMES = ("Sembiyan", "Sharma", "Iyer", "Reddy", "Nair", "Gupta", "Menon", "Das")
CITIES = (("Chennai", "TamilNadu", "600001"), ("Mumbai", "Maharashtra", "400001"),
          ("Bengaluru", "Karnataka", "560001"), ("Kolkata", "WestBengal", "700001"))
CANCEL_REASONS = (("buyer_cancellation", "Buyer changed their mind"),
                  ("seller_cancellation", "Out of stock at the seller"),
                  ("marketplace_cancellation", "Payment not received"))


@dataclass
class SandboxAddress:
    first_name: str
    last_name: str
    line1: str
    line2: str
    city: str
    state: str
    zip_code: str


@dataclass
class SandboxLine:
    line_id: str
    sku: str
    quantity: int
    price: str  # the line total, a decimal string ("900.0")
    cancelled: bool = False
    cancelled_at: float | None = None
    # buyer_cancellation | seller_cancellation | marketplace_cancellation
    cancel_type: str | None = None
    cancel_reason: str | None = None
    # A buyer's request to cancel the line, which the seller has not acted on yet (Amazon).
    requested_at: float | None = None
    request_reason: str | None = None


@dataclass
class SandboxOrder:
    channel: str
    order_id: str
    created: float
    updated: float
    ship_to: SandboxAddress
    bill_to: SandboxAddress
    payment_ref: str
    lines: list[SandboxLine]
    # Amazon-style status; "CANCELLED" once every line is cancelled.
    status: str = "UNSHIPPED"
    # A second id some marketplaces have (Flipkart's shipmentId).
    shipment_id: str = ""
    # Who ships it (Amazon's fulfilledBy): MERCHANT, or AMAZON for an FBA order.
    fulfilled_by: str = "MERCHANT"
    # What only one marketplace has, read by its emulator (Flipkart: hold, approved_at, dispatch dates).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum((Decimal(line.price) for line in self.lines), Decimal("0"))

    @property
    def cancelled(self) -> bool:
        return all(line.cancelled for line in self.lines)

    def public(self) -> dict[str, Any]:
        try:
            total = str(self.total)
        except ArithmeticError:
            total = None  # a line price that is not a number: the sandbox can serve bad data on purpose
        return {**asdict(self), "total": total}


class OrderBook:
    """Every channel's orders, in creation order. Change them only under `lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.orders: dict[str, dict[str, SandboxOrder]] = {}  # channel -> order id -> order
        self._seq = itertools.count(1)

    def clear(self) -> None:
        with self.lock:
            self.orders.clear()

    def for_channel(self, channel: str) -> list[SandboxOrder]:
        with self.lock:
            return list(self.orders.get(channel, {}).values())

    def get(self, channel: str, order_id: str) -> SandboxOrder | None:
        with self.lock:
            return self.orders.get(channel, {}).get(order_id)

    # -- creating ------------------------------------------------------------------------------

    def create(self, channel: str, *, count: int = 0, explicit: list[dict[str, Any]] | None = None,
               skus: list[str] | None = None, lines_per_order: int = 1, seed: int | None = None,
               order_id_format: str = "{date}-{seq:03d}-{rand:06d}") -> list[SandboxOrder]:
        """`count` generated orders (names, addresses, SKUs from `skus`), or `explicit` ones:
        {"order_id"?, "lines": [{"sku", "quantity"?, "price"}], "ship_to"?, "bill_to"?,
        "payment_ref"?, "created"?, "status"?: "UNSHIPPED" | "SHIPPED", "fulfilled_by"?: "MERCHANT" | "AMAZON",
        "extra"?}. Status and fulfilled_by are Amazon's; extra is read by one emulator (Flipkart)."""
        rng = random.Random(seed)
        skus = skus or [f"SKU{n}" for n in range(1, 21)]
        made: list[SandboxOrder] = []
        with self.lock:
            book = self.orders.setdefault(channel, {})
            for spec in (explicit or []):
                made.append(self._add(book, channel, self._from_spec(channel, spec, rng, order_id_format)))
            for _ in range(count):
                made.append(self._add(book, channel, self._generate(channel, rng, skus, lines_per_order, order_id_format)))
        return made

    def _add(self, book: dict[str, SandboxOrder], channel: str, order: SandboxOrder) -> SandboxOrder:
        if order.order_id in book:
            raise ValueError(f"order {order.order_id} already exists on {channel}")
        book[order.order_id] = order
        return order

    def _new_id(self, rng: random.Random, order_id_format: str) -> tuple[str, int]:
        seq = next(self._seq)
        oid = order_id_format.format(date=time.strftime("%y%m%d"), seq=seq % 1000, rand=rng.randrange(10**6), n=seq)
        return f"{oid}-{seq}", seq

    def _address(self, rng: random.Random) -> SandboxAddress:
        city, state, zip_code = rng.choice(CITIES)
        return SandboxAddress(rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), f"Plot No {rng.randrange(1, 999)}",
                              f"Street {rng.randrange(1, 99)}", city, state, zip_code)

    def _generate(self, channel: str, rng: random.Random, skus: list[str], lines: int, fmt: str) -> SandboxOrder:
        order_id, seq = self._new_id(rng, fmt)
        now = time.time()
        address = self._address(rng)
        order_lines = [
            SandboxLine(line_id=f"{seq}{n:02d}", sku=rng.choice(skus), quantity=rng.choice((1, 1, 1, 2)),
                        price=f"{rng.randrange(199, 4999)}.{rng.choice(('0', '50', '99'))}")
            for n in range(1, lines + 1)
        ]
        return SandboxOrder(channel=channel, order_id=order_id, created=now, updated=now, ship_to=address,
                            bill_to=address, payment_ref=f"PAY-{seq:09d}", lines=order_lines, shipment_id=f"SH{seq:010d}")

    def _from_spec(self, channel: str, spec: dict[str, Any], rng: random.Random, fmt: str) -> SandboxOrder:
        if not isinstance(spec, dict) or not isinstance(spec.get("lines"), list) or not spec["lines"]:
            raise ValueError("an explicit order needs a non-empty list of lines")
        generated_id, seq = self._new_id(rng, fmt)
        now = float(spec.get("created", time.time()))
        address = self._address(rng)
        ship_to = SandboxAddress(**spec["ship_to"]) if "ship_to" in spec else address
        bill_to = SandboxAddress(**spec["bill_to"]) if "bill_to" in spec else ship_to
        if not isinstance(spec.get("extra", {}), dict):
            raise ValueError("an order's extra must be an object")
        lines = []
        for n, line in enumerate(spec["lines"], start=1):
            if not isinstance(line, dict) or "sku" not in line or "price" not in line:
                raise ValueError(f"line {n} needs sku and price")

            lines.append(SandboxLine(line_id=str(line.get("line_id", f"{seq}{n:02d}")), sku=str(line["sku"]),
                                     quantity=int(line.get("quantity", 1)), price=str(line["price"])))
        status, fulfilled_by = spec.get("status", "UNSHIPPED"), spec.get("fulfilled_by", "MERCHANT")
        if status not in ("UNSHIPPED", "SHIPPED"):
            raise ValueError(f"status {status!r}: a new order is UNSHIPPED or SHIPPED")
        if fulfilled_by not in ("MERCHANT", "AMAZON"):
            raise ValueError(f"fulfilled_by {fulfilled_by!r}: MERCHANT or AMAZON")
        return SandboxOrder(channel=channel, order_id=str(spec.get("order_id", generated_id)), created=now, updated=now,
                            ship_to=ship_to, bill_to=bill_to, payment_ref=str(spec.get("payment_ref", f"PAY-{seq:09d}")),
                            lines=lines, shipment_id=str(spec.get("shipment_id", f"SH{seq:010d}")), status=status,
                            fulfilled_by=fulfilled_by, extra=dict(spec.get("extra", {})))

    # -- cancelling ----------------------------------------------------------------------------

    def cancel(self, channel: str, *, count: int = 0, explicit: list[dict[str, Any]] | None = None,
               partial_share: float = 0.0, seed: int | None = None) -> list[tuple[SandboxOrder, list[SandboxLine]]]:
        """Cancel `count` open orders (oldest first; a `partial_share` of them only in part, when
        they have more than one line), or `explicit` ones: {"order_id", "line_ids"?: [...],
        "type"?: "buyer_cancellation", "reason"?: "..."}."""
        rng = random.Random(seed)
        done: list[tuple[SandboxOrder, list[SandboxLine]]] = []
        with self.lock:
            book = self.orders.get(channel, {})
            for spec in (explicit or []):
                order = book.get(str(spec.get("order_id")))
                if order is None:
                    raise ValueError(f"no order {spec.get('order_id')!r} on {channel}")
                wanted = spec.get("line_ids")
                lines = [l for l in order.lines if not l.cancelled and (wanted is None or l.line_id in wanted)]
                kind, reason = spec.get("type"), spec.get("reason")
                done.append((order, self._cancel_lines(order, lines, rng, kind, reason)))
            if count:
                open_orders = [o for o in book.values() if not o.cancelled]
                for order in open_orders[:count]:
                    lines = [l for l in order.lines if not l.cancelled]
                    if len(lines) > 1 and rng.random() < partial_share:
                        lines = lines[: len(lines) // 2]
                    done.append((order, self._cancel_lines(order, lines, rng, None, None)))
        return done

    def request_cancellation(self, channel: str, explicit: list[dict[str, Any]]) -> list[tuple[SandboxOrder, list[SandboxLine]]]:
        """Buyers asking to cancel lines of open orders, which nobody has cancelled yet:
        [{"order_id", "line_ids"?: [...], "reason"?: "..."}]. Asking moves the order's updated time."""
        done: list[tuple[SandboxOrder, list[SandboxLine]]] = []
        with self.lock:
            book = self.orders.get(channel, {})
            for spec in explicit:
                order = book.get(str(spec.get("order_id")))
                if order is None:
                    raise ValueError(f"no order {spec.get('order_id')!r} on {channel}")
                wanted = spec.get("line_ids")
                lines = [l for l in order.lines if not l.cancelled and (wanted is None or l.line_id in wanted)]
                now = time.time()
                for line in lines:
                    line.requested_at, line.request_reason = now, str(spec.get("reason") or "Buyer changed their mind")
                order.updated = now
                done.append((order, lines))
        return done

    def _cancel_lines(self, order: SandboxOrder, lines: list[SandboxLine], rng: random.Random,
                      kind: str | None, reason: str | None) -> list[SandboxLine]:
        now = time.time()
        default_kind, default_reason = rng.choice(CANCEL_REASONS)
        for line in lines:
            line.cancelled, line.cancelled_at = True, now
            line.cancel_type, line.cancel_reason = kind or default_kind, reason or default_reason
        order.updated = now
        if order.cancelled:
            order.status = "CANCELLED"
        return lines
