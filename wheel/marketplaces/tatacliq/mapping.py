"""Pure mapping between domain updates and Tata CLiQ's JSON bodies and answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wheel.domain import ItemResult, ListingUpdate
from wheel.marketplaces.base import Call

# The call kind (and path) for each field's change; ranging splits by the flag's value.
MAX_BATCH = 500


def plan(updates: Sequence[ListingUpdate]) -> list[Call]:
    groups: dict[tuple[str, str], list[ListingUpdate]] = {}
    for update in updates:
        if update.ranged is not None:
            groups.setdefault(("ranging" if update.ranged else "deranging", "ranged"), []).append(update)
        if update.quantity is not None:
            groups.setdefault(("inventory", "quantity"), []).append(update)
        if update.price is not None:
            groups.setdefault(("pricing", "price"), []).append(update)
    calls = []
    # Deranging before inventory, ranging after it: a SKU never shows stock while unlisted.
    for kind in ("deranging", "pricing", "inventory", "ranging"):
        for (group_kind, field), members in groups.items():
            if group_kind != kind:
                continue
            for start in range(0, len(members), MAX_BATCH):
                chunk = tuple(members[start:start + MAX_BATCH])
                calls.append(Call(operation=kind, updates=chunk, fields=frozenset({field}), kind=kind))
    return calls


def body(call: Call) -> list[dict[str, Any]]:
    if call.kind in ("ranging", "deranging"):
        return [{"ean": u.ean, "sku": u.sku} for u in call.updates]
    if call.kind == "inventory":
        return [{"sku": u.sku, "ean": u.ean, "quantity": u.quantity} for u in call.updates]
    return [{"sku": u.sku, "ean": u.ean, "mrp": float(u.price.mrp), "sellingPrice": float(u.price.selling_price)}
            for u in call.updates]


def results(call: Call, answer: Any) -> list[ItemResult]:
    """One verdict per SKU; a SKU the answer does not mention counts as accepted (HTTP 200)."""
    (field,) = call.fields
    verdicts = {}
    if isinstance(answer, dict):
        for item in answer.get("items") or []:
            if isinstance(item, dict) and "sku" in item:
                verdicts[item["sku"]] = item
    out = []
    for update in call.updates:
        item = verdicts.get(update.sku, {})
        ok = str(item.get("status", "SUCCESS")).upper() in ("SUCCESS", "RANGED", "OK")
        out.append(ItemResult(update.sku, field, ok, None if ok else "REJECTED", None if ok else item.get("reason")))
    return out
