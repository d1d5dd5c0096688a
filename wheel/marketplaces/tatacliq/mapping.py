"""Pure mapping between domain items and Tata CLiQ's JSON bodies."""

from __future__ import annotations

from collections.abc import Sequence

from wheel.domain import RangingItem


def ranging_body(items: Sequence[RangingItem]) -> list[dict[str, str]]:
    return [{"ean": item.ean, "sku": item.sku} for item in items]
