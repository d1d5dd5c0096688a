"""Pure mapping between domain updates and Tata CLiQ's JSON bodies and answers.

The ranging body, `[{"ean", "sku"}]`, is the original Wheel's (github demystifyfp/BlogSamples,
clojure/wheel/src/wheel/marketplace/tata_cliq/api.clj). The other bodies and the answer
`{"status", "items": [{"sku", "status", "reason"}]}` are UNCONFIRMED, invented by analogy: Tata
CLiQ publishes no API (the original's mock answered only an HTTP status).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from wheel.domain import DERANGING, INVENTORY, PRICING, RANGING, ItemResult, ListingUpdate
from wheel.marketplaces.base import Call

# The call kind (and path) for each field's change; ranging splits by the flag's value.
MAX_BATCH = 500
# The statuses that mean the SKU was taken, and those that mean it was refused.
SUCCESS = frozenset({"SUCCESS", "RANGED", "OK"})
FAILURE = frozenset({"FAILURE", "FAILED", "ERROR", "REJECTED"})
_CENTS = Decimal("0.01")


def plan(updates: Sequence[ListingUpdate]) -> list[Call]:
    groups: dict[tuple[str, str], list[ListingUpdate]] = {}
    for update in updates:
        if update.ranged is not None:
            groups.setdefault((RANGING if update.ranged else DERANGING, "ranged"), []).append(update)
        if update.quantity is not None:
            groups.setdefault((INVENTORY, "quantity"), []).append(update)
        if update.price is not None:
            groups.setdefault((PRICING, "price"), []).append(update)
    calls = []
    # Deranging before inventory, ranging after it: a SKU never shows stock while unlisted.
    for kind in (DERANGING, PRICING, INVENTORY, RANGING):
        for (group_kind, field), members in groups.items():
            if group_kind != kind:
                continue
            for start in range(0, len(members), MAX_BATCH):
                chunk = tuple(members[start:start + MAX_BATCH])
                calls.append(Call(operation=kind, updates=chunk, fields=frozenset({field}), kind=kind))
    return calls


def body(call: Call) -> list[dict[str, Any]]:
    if call.kind in (RANGING, DERANGING):
        return [{"ean": u.ean, "sku": u.sku} for u in call.updates]
    if call.kind == INVENTORY:
        return [{"sku": u.sku, "ean": u.ean, "quantity": u.quantity} for u in call.updates]
    return [{"sku": u.sku, "ean": u.ean, "mrp": money(u.price.mrp), "sellingPrice": money(u.price.selling_price)}
            for u in call.updates]


def money(amount: Decimal) -> str:
    """Rupees as a plain decimal string with paise, "999.50": never a float, which cannot hold
    every amount in paise exactly, and never an exponent. The OMS's prices have 2 decimals at
    most (pricing.xsd), so nothing is rounded here."""
    return format(amount.quantize(_CENTS), "f")


def results(call: Call, answer: Any) -> list[ItemResult]:
    """One verdict per SKU from a JSON answer. Only a SKU the answer names with a success status
    counts as done: one it leaves out, or names without a status, gets NO_VERDICT (nobody may
    believe a change went through that Tata CLiQ never confirmed)."""
    (field,) = call.fields
    verdicts = {}
    items = answer.get("items") if isinstance(answer, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("sku"), str):
            verdicts.setdefault(item["sku"], item)
    return [ItemResult(update.sku, field, *sku_verdict(verdicts.get(update.sku))) for update in call.updates]


def sku_verdict(item: dict | None) -> tuple[bool, str | None, str | None]:
    """(ok, code, message) for one SKU's part of an answer."""
    if item is None:
        return False, "NO_VERDICT", "Tata CLiQ's answer did not mention this SKU"
    status = str(item.get("status") or "").strip().upper()
    if status in SUCCESS:
        return True, None, None
    if not status:
        return False, "NO_VERDICT", "Tata CLiQ's answer gave no status for this SKU"
    if status in FAILURE:
        reason = item.get("reason")
        return False, "REJECTED", str(reason) if reason else "Tata CLiQ refused this SKU without saying why"
    return False, "UNKNOWN_STATUS", f"Tata CLiQ answered status {status[:40]!r} for this SKU"
