"""Every operation on every marketplace, through the real bridge, workers and sandbox: what the
marketplace holds afterwards, and the events that say so."""

from __future__ import annotations

import json

import pytest

from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e]

CHANNELS = {
    "UT": ("tatacliq", "token-ut", {"marketplace": "tatacliq", "token": "token-ut"}),
    "UF": ("flipkart", json.dumps({"app_id": "app-uf", "app_secret": "secret-uf"}),
           {"marketplace": "flipkart", "client_id": "app-uf", "token": "secret-uf"}),
    "UZ": ("amazon", json.dumps({"client_id": "lwa-uz", "client_secret": "lwa-secret-uz", "refresh_token": "refresh-uz"}),
           {"marketplace": "amazon", "client_id": "lwa-uz", "client_secret": "lwa-secret-uz", "token": "refresh-uz"}),
}


def items(tag, rows):
    inner = "".join(rows)
    return f"<{tag}List><{tag}ItemList>{inner}</{tag}ItemList></{tag}List>".encode()


def ranging(flag, *skus):
    return items("EXTNChannel", [f'<EXTNChannelItem ChannelID="{ch}" EAN="E-{sku}" ItemID="{sku}" RangeFlag="{flag}"/>'
                                 for ch in CHANNELS for sku in skus])


def inventory(**quantities):
    return items("EXTNInventory", [f'<EXTNInventoryItem ChannelID="{ch}" EAN="E-{sku}" ItemID="{sku}" Quantity="{q}"/>'
                                   for ch in CHANNELS for sku, q in quantities.items()])


def pricing(**prices):
    return items("EXTNPrice", [f'<EXTNPriceItem ChannelID="{ch}" EAN="E-{sku}" ItemID="{sku}" MRP="{m}" SellingPrice="{p}"/>'
                               for ch in CHANNELS for sku, (m, p) in prices.items()])


@pytest.fixture
def stack(stack_factory):
    stack = stack_factory({ch: behaviour for ch, (_, _, behaviour) in CHANNELS.items()})
    for channel_id, (marketplace, secret, _) in CHANNELS.items():
        stack.add_channel(channel_id, secret, marketplace=marketplace)
    stack.start_sandbox()
    stack.add_worker("oms,notifications,marketplace.tatacliq,marketplace.flipkart,marketplace.amazon")
    stack.start_bridge()
    return stack


def outcome(stack, name, count):
    return wait_for(lambda: len(stack.events(name)) >= count and stack.events(name), 20, f"{count} x {name}")


def test_all_four_operations_reach_every_marketplace(stack):
    stack.put("ranging", ranging("Y", "S1", "S2"))
    [ranged] = outcome(stack, "ranging/succeeded", 1)
    assert ranged.channel_id == "UT" and len(ranged.payload["items"]) == 2
    # Flipkart and Amazon list a SKU by making stock available: they wait for a quantity.
    waiting = outcome(stack, "ranging/waiting-for-quantity", 2)
    assert {w.channel_id for w in waiting} == {"UF", "UZ"} and {w.parent_id for w in waiting} == {ranged.parent_id}
    stack.put("inventory", inventory(S1=7, S2=3))
    outcome(stack, "inventory/succeeded", 3)
    assert {e.channel_id for e in outcome(stack, "ranging/succeeded", 3)} == {"UT", "UF", "UZ"}
    stack.put("pricing", pricing(S1=("1299.00", "999.00"), S2=("500.00", "450.00")))
    outcome(stack, "pricing/succeeded", 3)
    for channel in CHANNELS:
        state = stack.state(channel)
        assert state["S1"]["ranged"] is True and state["S1"]["quantity"] == 7 and state["S2"]["quantity"] == 3
        assert float(state["S1"]["mrp"]) == 1299 and float(state["S1"]["selling_price"]) == 999

    stack.put("deranging", ranging("N", "S2"))
    outcome(stack, "deranging/succeeded", 3)
    for channel in CHANNELS:
        state = stack.state(channel)
        assert state["S2"]["ranged"] is False and state["S1"]["ranged"] is True
    # Flipkart unlists at the location, Amazon keeps the listing: neither shows stock.
    assert stack.state("UF")["S2"]["quantity"] == 0 and stack.state("UZ")["S2"]["quantity"] == 0
    # Amazon's PATCH carried the stock and the price together, under the documented product type.
    patches = [c for c in stack.calls("UZ") if c["operation"] == "patchListingsItem"]
    assert patches and all(c["body"]["productType"] for c in patches)

    for event in stack.events():
        if event.type == "domain":
            assert event.parent_id is not None and event.marketplace in ("tatacliq", "flipkart", "amazon")
    assert not [e for e in stack.events() if e.level == "error"]
    assert stack.sandbox_stats()["throttled"] == 0


def test_a_price_flipkart_cannot_take_fails_for_flipkart_only_and_says_why(stack):
    stack.put("pricing", pricing(S1=("1299.50", "999.50")))
    [failure] = outcome(stack, "pricing/failed", 1)
    assert failure.channel_id == "UF"
    assert "whole rupees" in failure.payload["items"][0]["error"]
    succeeded = outcome(stack, "pricing/succeeded", 2)
    assert {e.channel_id for e in succeeded} == {"UT", "UZ"}
    assert stack.state("UT")["S1"]["selling_price"] in ("999.5", "999.50") and stack.state("UZ")["S1"]["selling_price"] == "999.50"
    assert "S1" not in stack.state("UF") or "selling_price" not in stack.state("UF")["S1"]
