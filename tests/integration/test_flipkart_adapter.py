"""The Flipkart adapter against the real sandbox server (in a thread of the test process)."""

from __future__ import annotations

import json
import time
from collections import Counter
from decimal import Decimal

import pytest
import requests

from sandbox.app import ChannelBehaviour
from sandbox.flipkart import fsn
from wheel.domain import ItemResult, ListingUpdate, MarketplaceListing, Price
from wheel.marketplaces.base import ChannelConfig, HttpConfig
from wheel.marketplaces.errors import AuthError, PermanentError, TransientError
from wheel.marketplaces.flipkart import FlipkartAdapter, make_adapter
from wheel.marketplaces.flipkart.client import FlipkartClient
from wheel.marketplaces.lookups import MemoryLookupCache

APP_ID, APP_SECRET = "app-uf", "secret-uf-0123456789"
HTTP = HttpConfig(2, 10)


@pytest.fixture
def channel(sandbox, secrets):
    sandbox.state.channels["UF"] = ChannelBehaviour(marketplace="flipkart", client_id=APP_ID, token=APP_SECRET)
    (secrets.secrets_dir / "flipkart-uf").write_text(json.dumps({"app_id": APP_ID, "app_secret": APP_SECRET}))
    return ChannelConfig(id="UF", marketplace="flipkart", base_url=f"{sandbox.base_url}/flipkart",
                         credentials_ref="flipkart-uf")


@pytest.fixture
def adapter(channel, secrets) -> FlipkartAdapter:
    return make_adapter(channel, HTTP, secrets)


def behaviour(sandbox) -> ChannelBehaviour:
    return sandbox.state.channels["UF"]


def calls(sandbox, operation: str | None = None) -> list:
    return [c for c in sandbox.state.calls if operation is None or c.operation == operation]


def state(sandbox) -> dict:
    return sandbox.state.listings.get("UF", {})


def stock(sku: str, quantity: int, *, ranged: bool | None = None, listed: bool = True) -> ListingUpdate:
    return ListingUpdate(sku=sku, ean=f"E-{sku}", ranged=ranged, quantity=quantity, listed=listed)


def priced(sku: str, mrp: str, selling: str) -> ListingUpdate:
    return ListingUpdate(sku=sku, ean=f"E-{sku}", price=Price(Decimal(mrp), Decimal(selling)))


def push(adapter, gate, updates, request_id="req-1") -> tuple[list[ItemResult], list[ItemResult]]:
    calls_, refused = adapter.plan(updates)
    results = [r for call in calls_ for r in adapter.execute(call, gate, request_id=request_id)]
    return results, refused


# -- pushing ----------------------------------------------------------------------------------


def test_inventory_of_25_skus_goes_in_3_calls_and_lands(sandbox, adapter, gate):
    results, refused = push(adapter, gate, [stock(f"S{i:02}", i, ranged=True) for i in range(25)])
    assert refused == []
    assert len(results) == 50 and all(r.ok for r in results)
    updates = calls(sandbox, "updateInventory")
    assert [len(c.body) for c in updates] == [10, 10, 5]
    assert all(c.status == 200 and c.request_id == "req-1" for c in updates)
    assert state(sandbox)["S07"]["quantity"] == 7 and state(sandbox)["S07"]["ranged"] is True
    assert updates[0].body["S00"] == {"product_id": fsn("UF", "S00"),
                                      "locations": [{"id": "LOC-UF", "status": "ENABLED", "inventory": 0}]}
    assert len(state(sandbox)) == 25


def test_deranging_sends_disabled_with_0_and_ranging_enabled(sandbox, adapter, gate):
    results, _ = push(adapter, gate, [stock("S1", 0, ranged=False, listed=False)])
    assert results == [ItemResult("S1", "ranged", True), ItemResult("S1", "quantity", True)]
    assert calls(sandbox, "updateInventory")[-1].body["S1"]["locations"][0] == {
        "id": "LOC-UF", "status": "DISABLED", "inventory": 0}
    assert (state(sandbox)["S1"]["ranged"], state(sandbox)["S1"]["quantity"]) == (False, 0)

    push(adapter, gate, [stock("S1", 9, ranged=True)])
    assert calls(sandbox, "updateInventory")[-1].body["S1"]["locations"][0]["status"] == "ENABLED"
    assert (state(sandbox)["S1"]["ranged"], state(sandbox)["S1"]["quantity"]) == (True, 9)


def test_whole_rupee_price_applies_and_paise_are_refused_without_a_call(sandbox, adapter, gate):
    results, refused = push(adapter, gate, [priced("P1", "1299", "999.00"), priced("P2", "1299", "999.50")])
    assert results == [ItemResult("P1", "price", True)]
    assert refused == [ItemResult("P2", "price", False, "WHOLE_RUPEES_ONLY",
                                  "Flipkart takes whole rupees only; 999.50 has paise")]
    (call,) = calls(sandbox, "updatePrice")
    assert call.body == {"P1": {"product_id": fsn("UF", "P1"),
                                "price": {"mrp": 1299, "selling_price": 999, "currency": "INR"}}}
    assert (state(sandbox)["P1"]["mrp"], state(sandbox)["P1"]["selling_price"]) == ("1299.00", "999.00")
    assert "P2" not in state(sandbox)


def test_per_sku_failure_in_a_200_gives_flipkarts_code(sandbox, adapter, gate):
    results, _ = push(adapter, gate, [priced("GOOD", "500", "450"), priced("BAD", "500", "650")])
    assert calls(sandbox, "updatePrice")[0].status == 200
    good, bad = sorted(results, key=lambda r: r.sku != "GOOD")
    assert good == ItemResult("GOOD", "price", True)
    assert (bad.sku, bad.ok, bad.code) == ("BAD", False, "4202")
    assert "selling_price cannot be more than mrp" in bad.message
    assert "mrp" not in state(sandbox)["BAD"]


def test_a_sku_flipkart_does_not_hold_fails_without_being_sent(sandbox, adapter, gate):
    results, _ = push(adapter, gate, [stock("NOT-LISTED-X", 3), stock("S1", 3)])
    assert ItemResult("NOT-LISTED-X", "quantity", False, "SKU_NOT_LISTED",
                      "Flipkart holds no listing for this SKU") in results
    assert list(calls(sandbox, "updateInventory")[0].body) == ["S1"]


def test_fsn_look_ups_are_cached(sandbox, adapter, gate):
    push(adapter, gate, [stock("S1", 1), stock("S2", 2)])
    push(adapter, gate, [stock("S1", 5), priced("S2", "100", "90")])
    assert len(calls(sandbox, "getListings")) == 1
    assert calls(sandbox, "getListings")[0].body == {"skus": ["S1", "S2"]}


def test_location_id_from_the_channel_options_is_used(sandbox, channel, secrets, gate):
    configured = ChannelConfig(**{**vars(channel), "options": {"location_id": "LOC-ELSEWHERE"}})
    results, _ = push(make_adapter(configured, HTTP, secrets), gate, [stock("S1", 1)])
    assert results == [ItemResult("S1", "quantity", False, "4103", "unknown seller location id")]
    assert calls(sandbox, "updateInventory")[0].body["S1"]["locations"][0]["id"] == "LOC-ELSEWHERE"


def test_every_listing_request_goes_through_the_quota_gate(sandbox, adapter, gate):
    push(adapter, gate, [stock(f"S{i}", i) for i in range(12)] + [priced("S1", "10", "9")])
    adapter.read_listings(["S1"], gate)
    listing_calls = [c.operation for c in sandbox.state.calls if c.operation != "token"]
    # Look-ups go in a thread of their own, ahead of the updates: the two interleave as they may.
    assert Counter(gate.acquired) == Counter(listing_calls)
    # The price goes before the stock that lists the SKUs (so none sells at a stale price).
    assert [op for op in listing_calls if op != "getListings"] == ["updatePrice", "updateInventory", "updateInventory"]
    # The batch's SKUs are looked up 10 a call, in the order of the calls that need them (two at a
    # time, so the second may reach Flipkart first), then read_listings' own.
    looked_up = [c.body["skus"] for c in calls(sandbox, "getListings")]
    assert sorted(looked_up[:2]) == [["S1", "S0", *(f"S{i}" for i in range(2, 10))], ["S10", "S11"]]
    assert looked_up[2:] == [["S1"]]


def test_read_listings_returns_what_was_pushed(sandbox, adapter, gate):
    both = ListingUpdate("S1", "E1", ranged=True, quantity=4, price=Price(Decimal("1299"), Decimal("999")))
    push(adapter, gate, [both, stock("S2", 0, ranged=False, listed=False)])
    held = adapter.read_listings(["S1", "S2", "NOT-LISTED-Z"], gate)
    assert held == {
        "S1": MarketplaceListing("S1", ranged=True, quantity=4, price=Price(Decimal("1299"), Decimal("999"))),
        "S2": MarketplaceListing("S2", ranged=False, quantity=0, price=None),
    }


# -- several locations, and listings not on sale ------------------------------------------------


def place(sandbox, sku: str) -> dict:
    return {loc: (p["status"], p["inventory"]) for loc, p in state(sandbox)[sku]["locations"].items()}


@pytest.mark.parametrize("configured", [None, "LOC-A"])
def test_deranging_disables_the_sku_at_every_location_of_its_listing(sandbox, channel, secrets, gate, configured):
    behaviour(sandbox).options = {"locations": ["LOC-A", "LOC-B", "LOC-C"]}
    with sandbox.state.lock:  # on sale at two locations, one set up outside Wheel
        listing = sandbox.state.listing("UF", "S1")
        listing["locations"] = {"LOC-A": {"status": "ENABLED", "inventory": 5},
                                "LOC-B": {"status": "ENABLED", "inventory": 3},
                                "LOC-C": {"status": "DISABLED", "inventory": 0}}
    options = {"location_id": configured} if configured else {}
    adapter = make_adapter(ChannelConfig(**{**vars(channel), "options": options}), HTTP, secrets)
    results, _ = push(adapter, gate, [stock("S1", 0, ranged=False, listed=False)])
    assert results == [ItemResult("S1", "ranged", True), ItemResult("S1", "quantity", True)]
    assert place(sandbox, "S1") == {"LOC-A": ("DISABLED", 0), "LOC-B": ("DISABLED", 0), "LOC-C": ("DISABLED", 0)}
    assert state(sandbox)["S1"]["ranged"] is False


def test_a_location_added_after_the_look_up_is_disabled_too(sandbox, adapter, gate):
    push(adapter, gate, [stock("S1", 4, ranged=True)])
    with sandbox.state.lock:  # the seller lists the SKU at a second location in Seller Hub
        sandbox.state.listing("UF", "S1")["locations"]["LOC-NEW"] = {"status": "ENABLED", "inventory": 2}
    results, _ = push(adapter, gate, [stock("S1", 0, ranged=False, listed=False)])
    assert all(r.ok for r in results)
    assert place(sandbox, "S1") == {"LOC-UF": ("DISABLED", 0), "LOC-NEW": ("DISABLED", 0)}


def test_stock_for_several_locations_still_needs_the_channels_location(sandbox, adapter, gate):
    behaviour(sandbox).options = {"locations": ["LOC-A", "LOC-B"]}
    results, _ = push(adapter, gate, [stock("S1", 4, ranged=True)])
    assert {(r.ok, r.code) for r in results} == {(False, "LOCATION_UNKNOWN")}
    assert calls(sandbox, "updateInventory") == []


@pytest.mark.parametrize("status, code, says", [
    ({"listing_status": "INACTIVE"}, "LISTING_INACTIVE", "Flipkart's listing is INACTIVE"),
    ({"archived_status": "ARCHIVED"}, "LISTING_ARCHIVED", "Flipkart's listing is ARCHIVED"),
    ({"listing_status": "INACTIVE", "archived_status": "ARCHIVED"}, "LISTING_ARCHIVED", "is ARCHIVED"),
])
def test_stock_and_price_for_a_listing_not_on_sale_fail_with_the_reason(sandbox, adapter, gate, status, code, says):
    with sandbox.state.lock:
        sandbox.state.listing("UF", "S1").update(status)
    both = ListingUpdate("S1", "E1", ranged=True, quantity=4, price=Price(Decimal("1299"), Decimal("999")))
    results, _ = push(adapter, gate, [both])
    assert [(r.field, r.ok, r.code) for r in results] == [("price", False, code), ("ranged", False, code),
                                                          ("quantity", False, code)]
    assert all(says in r.message and "not on sale" in r.message for r in results)
    # Sent all the same: the listing has the right stock and price the day it is on sale again.
    assert (state(sandbox)["S1"]["quantity"], state(sandbox)["S1"]["mrp"]) == (4, "1299.00")

    # Deranging it is what it needs: that succeeds.
    results, _ = push(adapter, gate, [stock("S1", 0, ranged=False, listed=False)])
    assert all(r.ok for r in results) and state(sandbox)["S1"]["ranged"] is False


def test_a_listing_that_goes_inactive_after_the_look_up_is_noticed_once_the_look_up_is_old(sandbox, channel,
                                                                                       secrets, gate):
    lookups = MemoryLookupCache(ttl_s=0.5)
    adapter = make_adapter(channel, HTTP, secrets, lookups)
    push(adapter, gate, [stock("S1", 1, ranged=True)])
    with sandbox.state.lock:
        sandbox.state.listing("UF", "S1")["listing_status"] = "INACTIVE"
    time.sleep(0.6)
    results, _ = push(adapter, gate, [stock("S1", 2)])
    assert [(r.ok, r.code) for r in results] == [(False, "LISTING_INACTIVE")]
    assert len(calls(sandbox, "getListings")) == 2


def test_read_listings_counts_a_sku_on_sale_only_when_active_and_enabled_somewhere(sandbox, channel, secrets, gate):
    behaviour(sandbox).options = {"locations": ["LOC-A", "LOC-B"]}
    with sandbox.state.lock:
        for sku in ("S1", "S2"):
            sandbox.state.listing("UF", sku)["locations"] = {"LOC-A": {"status": "DISABLED", "inventory": 0},
                                                             "LOC-B": {"status": "ENABLED", "inventory": 3}}
        sandbox.state.listing("UF", "S2")["listing_status"] = "INACTIVE"
    configured = ChannelConfig(**{**vars(channel), "options": {"location_id": "LOC-A"}})
    held = make_adapter(configured, HTTP, secrets).read_listings(["S1", "S2"], gate)
    assert held == {"S1": MarketplaceListing("S1", ranged=True, quantity=0, price=None),
                    "S2": MarketplaceListing("S2", ranged=False, quantity=0, price=None)}


# -- tokens -----------------------------------------------------------------------------------


def test_token_is_fetched_once_and_reused(sandbox, adapter, gate):
    for i in range(3):
        push(adapter, gate, [stock("S1", i)])
    (token_call,) = calls(sandbox, "token")
    assert token_call.status == 200
    assert all(c.status == 200 for c in calls(sandbox))


def test_a_token_is_renewed_before_its_expires_in_runs_out(sandbox, adapter, gate):
    behaviour(sandbox).token_ttl_s = 1  # the sandbox refuses the token after it (see test_flipkart_sandbox.py)
    push(adapter, gate, [stock("S1", 1)])
    time.sleep(1.1)
    results, _ = push(adapter, gate, [stock("S1", 2)])
    assert results == [ItemResult("S1", "quantity", True)]
    # Renewed ahead of time: no call was refused.
    assert [c.status for c in calls(sandbox) if c.operation != "token"] == [200, 200, 200]
    assert len(calls(sandbox, "token")) == 2


def test_expired_token_is_renewed_once_and_the_call_retried(sandbox, adapter, gate):
    push(adapter, gate, [stock("S1", 1)])
    # Expire it on Flipkart's side before the adapter expects (a token revoked early).
    with sandbox.state.lock:
        sandbox.state.tokens = {token: (ch, 0.0) for token, (ch, _) in sandbox.state.tokens.items()}
    results, _ = push(adapter, gate, [stock("S1", 2)])
    assert results == [ItemResult("S1", "quantity", True)]
    assert [c.status for c in calls(sandbox, "updateInventory")] == [200, 401, 200]
    assert len(calls(sandbox, "token")) == 2
    assert state(sandbox)["S1"]["quantity"] == 2


def test_a_token_still_refused_after_renewal_is_an_auth_error(sandbox, adapter, gate):
    push(adapter, gate, [stock("S1", 1)])
    behaviour(sandbox).refuse_token = True
    calls_, _ = adapter.plan([stock("S1", 2)])
    with pytest.raises(AuthError) as caught:
        adapter.execute(calls_[0], gate, request_id="req-2")
    assert caught.value.status == 401
    assert [c.status for c in calls(sandbox, "updateInventory")] == [200, 401, 401]
    assert len(calls(sandbox, "token")) == 2
    assert gate.acquired.count("updateInventory") == 3
    assert APP_SECRET not in str(caught.value)


def test_wrong_app_secret_is_an_auth_error_without_the_secret(sandbox, channel, secrets, gate):
    wrong = "wrong-secret-987654321"
    (secrets.secrets_dir / "flipkart-uf").write_text(json.dumps({"app_id": APP_ID, "app_secret": wrong}))
    adapter = make_adapter(channel, HTTP, secrets)
    with pytest.raises(AuthError) as caught:
        adapter.read_listings(["S1"], gate)
    assert caught.value.status == 401
    assert "invalid_client" in str(caught.value)
    assert wrong not in str(caught.value) and APP_SECRET not in str(caught.value)
    assert gate.acquired == []  # the token call takes no quota


@pytest.mark.parametrize("content, says", [
    (None, "no secret for credentials reference 'flipkart-uf'"),
    ("app-uf:secret-uf-0123456789", "is not JSON"),
    ('{"app_id": "app-uf", "app_secret": "  "}', "lacks app_secret"),
    ('["secret-uf-0123456789"]', "must be a JSON object"),
])
def test_missing_or_invalid_credentials_are_an_auth_error_without_the_secret(channel, secrets, content, says):
    secret_file = secrets.secrets_dir / "flipkart-uf"
    if content is None:
        secret_file.unlink()
    else:
        secret_file.write_text(content)
    with pytest.raises(AuthError) as caught:
        make_adapter(channel, HTTP, secrets)
    assert says in str(caught.value)
    assert APP_SECRET not in str(caught.value)


# -- errors -----------------------------------------------------------------------------------


def test_429_is_a_transient_error_with_retry_after(sandbox, adapter, gate):
    behaviour(sandbox).quotas = {"updateInventory": [0.01, 1]}
    push(adapter, gate, [stock("S1", 1)])
    calls_, _ = adapter.plan([stock("S1", 2)])
    with pytest.raises(TransientError) as caught:
        adapter.execute(calls_[0], gate, request_id="req-2")
    assert caught.value.status == 429
    assert caught.value.retry_after and caught.value.retry_after > 1
    assert APP_SECRET not in str(caught.value)


def test_server_errors_are_transient(sandbox, adapter, gate):
    behaviour(sandbox).fail_status = 503
    with pytest.raises(TransientError) as caught:
        adapter.read_listings(["S1"], gate)
    assert caught.value.status == 503


def test_more_than_ten_skus_is_a_permanent_error_with_flipkarts_code(sandbox, gate):
    client = FlipkartClient(f"{sandbox.base_url}/flipkart", APP_ID, APP_SECRET, HTTP)
    sandbox.state.channels["UF"] = ChannelBehaviour(marketplace="flipkart", client_id=APP_ID, token=APP_SECRET)
    body = {f"S{i}": {"product_id": fsn("UF", f"S{i}"), "locations": []} for i in range(11)}
    with pytest.raises(PermanentError) as caught:
        client.update("updateInventory", body, gate, "req-x")
    assert (caught.value.status, caught.value.code) == (400, "4000")
    assert "at most 10 SKUs per call; got 11" in str(caught.value)


def test_the_sandbox_refuses_a_bearer_token_it_did_not_issue(sandbox, channel):
    response = requests.get(f"{channel.base_url}/sellers/listings/v3/S1",
                            headers={"Authorization": "Bearer made-up"}, timeout=5)
    assert response.status_code == 401
    assert state(sandbox) == {}
