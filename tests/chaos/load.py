"""The chaos run's load: OMS messages of all four kinds, marketplace orders and cancellations.

Every value the OMS sends is new and larger than any before it (quantity n, price 1000 + n for the
n-th item written), so a value names the message that carried it, and the auditor can tell from
the sandbox's call log whether a push ever carried an older value than one already pushed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

# Two channels per marketplace: (marketplace, Wheel's secret, the sandbox's side).
CHANNEL_IDS = {"tatacliq": ("UA", "UB"), "flipkart": ("UF", "UG"), "amazon": ("UZ", "UY")}
KINDS = ("ranging", "deranging", "inventory", "pricing")
# Mostly stock and prices, as an OMS sends them; enough (de)ranging to move SKUs on and off sale.
KIND_WEIGHTS = (0.15, 0.1, 0.4, 0.35)
MRP = "99999.00"
# Every documented quota times this, on both sides (Wheel and the sandbox), to keep the run short.
SCALE = 200.0


def channels() -> dict[str, str]:
    return {ch: marketplace for marketplace, ids in CHANNEL_IDS.items() for ch in ids}


@dataclass
class OmsMessage:
    message_id: str
    kind: str
    body: bytes
    # (channel, sku, value): ranged True/False, a quantity, or a selling price (whole rupees).
    items: list[tuple[str, str, object]] = field(default_factory=list)

    @property
    def field(self) -> str:
        return {"ranging": "ranged", "deranging": "ranged", "inventory": "quantity", "pricing": "price"}[self.kind]


class MessageMaker:
    """OMS documents in the formats of tests/samples/*.xml."""

    def __init__(self, skus: list[str], seed: int = 13):
        self.skus = skus
        self.rng = random.Random(seed)
        self.n = 0
        self.channel_ids = list(channels())

    def _value(self) -> int:
        self.n += 1
        return self.n

    def message(self, index: int, kind: str | None = None, skus: list[str] | None = None,
                channel_ids: list[str] | None = None) -> OmsMessage:
        kind = kind or self.rng.choices(KINDS, KIND_WEIGHTS)[0]
        skus = skus or self.rng.sample(self.skus, self.rng.randint(1, 3))
        message = OmsMessage(f"chaos-{index:06d}", kind, b"")
        rows = []
        for sku in skus:
            # Now and then every channel, mostly a few: about 6 items a message.
            targets = channel_ids or (self.channel_ids if self.rng.random() < 0.3
                                      else self.rng.sample(self.channel_ids, self.rng.randint(1, 3)))
            for ch in targets:
                ean = f"E-{sku}"
                if kind in ("ranging", "deranging"):
                    flag = "Y" if kind == "ranging" else "N"
                    rows.append(f'<EXTNChannelItem ChannelID="{ch}" EAN="{ean}" ItemID="{sku}" RangeFlag="{flag}"/>')
                    message.items.append((ch, sku, kind == "ranging"))
                elif kind == "inventory":
                    quantity = self._value()
                    rows.append(f'<EXTNInventoryItem ChannelID="{ch}" EAN="{ean}" ItemID="{sku}" Quantity="{quantity}"/>')
                    message.items.append((ch, sku, quantity))
                else:
                    price = 1000 + self._value()
                    rows.append(f'<EXTNPriceItem ChannelID="{ch}" EAN="{ean}" ItemID="{sku}" MRP="{MRP}" '
                                f'SellingPrice="{price}.00"/>')
                    message.items.append((ch, sku, price))
        tags = {"ranging": ("EXTNChannelList", "EXTNChannelItemList"), "deranging": ("EXTNChannelList", "EXTNChannelItemList"),
                "inventory": ("EXTNInventoryList", "EXTNInventoryItemList"), "pricing": ("EXTNPriceList", "EXTNPriceItemList")}
        outer, inner = tags[kind]
        message.body = f"<{outer}><{inner}>{''.join(rows)}</{inner}></{outer}>".encode()
        return message

    def warm_up(self, start: int) -> list[OmsMessage]:
        """Stock, then ranging, for every SKU on every channel, 25 SKUs a message: the SKUs are on
        sale when the chaos starts (a marketplace lists a SKU with its stock)."""
        out = []
        for kind in ("inventory", "ranging"):
            for i in range(0, len(self.skus), 25):
                out.append(self.message(start + len(out), kind, self.skus[i:i + 25], self.channel_ids))
        return out


def plan_orders(total: int, waves: int) -> list[dict[str, int]]:
    """Orders per channel for each wave, adding up to `total`."""
    ids = list(channels())
    plan = [dict.fromkeys(ids, 0) for _ in range(waves)]
    for n in range(total):
        plan[n % waves][ids[(n // waves) % len(ids)]] += 1
    return plan


def sandbox_channels() -> dict[str, dict[str, Any]]:
    """The sandbox's side of the six channels (its config file's "channels")."""
    out = {}
    for ch, marketplace in channels().items():
        if marketplace == "tatacliq":
            out[ch] = {"marketplace": marketplace, "token": f"token-{ch}"}
        elif marketplace == "flipkart":
            out[ch] = {"marketplace": marketplace, "client_id": f"app-{ch}", "token": f"secret-{ch}", "quota_scale": SCALE}
        else:
            out[ch] = {"marketplace": marketplace, "client_id": f"lwa-{ch}", "client_secret": f"lwa-secret-{ch}",
                       "token": f"refresh-{ch}", "quota_scale": SCALE, "order_lag_s": 1}
    return out


def wheel_secret(ch: str, marketplace: str) -> str:
    """What Wheel reads from the channel's secret file: the same credentials as the sandbox's side."""
    if marketplace == "tatacliq":
        return f"token-{ch}"
    if marketplace == "flipkart":
        return json.dumps({"app_id": f"app-{ch}", "app_secret": f"secret-{ch}"})
    return json.dumps({"client_id": f"lwa-{ch}", "client_secret": f"lwa-secret-{ch}", "refresh_token": f"refresh-{ch}"})
