"""The real Amazon adapter against the real sandbox server (in a thread): PATCHes, tokens, feeds, reads."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.app import ChannelBehaviour
from tests.support.gates import RecordingGate
from wheel.domain import ItemResult, ListingUpdate, MarketplaceListing, Price
from wheel.marketplaces.amazon import AmazonAdapter, make_adapter
from wheel.marketplaces.amazon.adapter import QUOTAS
from wheel.marketplaces.base import ChannelConfig, HttpConfig, PushConditions, Quota, QuotaWait, Submitted, Workload
from wheel.marketplaces.errors import AuthError, MarketplaceError, PermanentError, TransientError
from wheel.secrets import SecretStore

CLIENT_ID = "amzn1.application-oa2-client.ua"
CLIENT_SECRET = "client-SECRET-5e4f3a2b1c"
REFRESH = "Atzr|refresh-SECRET-9d8c7b6a"
SECRET_VALUES = (CLIENT_SECRET, REFRESH)
# Every SP-API operation takes quota; the LWA token and the pre-signed URLs do not.
UNMETERED = {"lwaToken", "uploadFeedDocument", "downloadFeedDocument"}


@pytest.fixture
def connect(sandbox, tmp_path: Path):
    """An adapter for channel UA, after telling the sandbox how UA behaves."""

    def connect(options: dict | None = None, secret: str | None = None, **behaviour) -> AmazonAdapter:
        sandbox.state.channels["UA"] = ChannelBehaviour(marketplace="amazon", token=REFRESH, client_id=CLIENT_ID,
                                                        client_secret=CLIENT_SECRET, **behaviour)
        if secret is None:
            secret = json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH})
        (tmp_path / "amazon-ua").write_text(secret)
        channel = ChannelConfig(
            id="UA", marketplace="amazon", base_url=f"{sandbox.base_url}/amazon", credentials_ref="amazon-ua",
            options={"seller_id": "UA", "lwa_url": f"{sandbox.base_url}/amazon/auth/o2/token", **(options or {})},
        )
        return make_adapter(channel, HttpConfig(2, 10), SecretStore({}, tmp_path))

    return connect


def calls(sandbox, operation: str | None = None) -> list:
    with sandbox.state.lock:
        return [c for c in sandbox.state.calls if operation is None or c.operation == operation]


def metered(sandbox) -> list[str]:
    return [c.operation for c in calls(sandbox) if c.operation not in UNMETERED]


def listings(sandbox) -> dict:
    return sandbox.state.listings.get("UA", {})


def values(sandbox) -> dict:
    """What Amazon holds per SKU, as values (the sandbox keeps the attributes too)."""
    keys = ("product_type", "quantity", "ranged", "selling_price", "mrp")
    return {sku: {k: v for k, v in listing.items() if k in keys} for sku, listing in listings(sandbox).items()}


def push(adapter: AmazonAdapter, gate: RecordingGate, updates: list[ListingUpdate], bulk: bool = False
         ) -> list[ItemResult]:
    """Plan and make the calls (`bulk`: as a feed); a submitted feed is polled until it ends, as the poll task would."""
    planned, refused = adapter.plan(updates, bulk=bulk)
    assert refused == []
    results = []
    for n, call in enumerate(planned):
        outcome = adapter.execute(call, gate, request_id=f"test-{n}")
        if isinstance(outcome, Submitted):
            results += outcome.results
            while not (polled := adapter.poll(outcome, gate)).finished:
                time.sleep(0.1)
            assert polled.doubtful == (), polled
            outcome = list(polled.results)
        results += outcome
    return results


def assert_no_secret(error: BaseException) -> None:
    for secret in SECRET_VALUES:
        assert secret not in str(error)


def price(mrp: str, selling: str) -> Price:
    return Price(mrp=Decimal(mrp), selling_price=Decimal(selling))


# -- PATCH per SKU ---------------------------------------------------------------------------------


def test_stock_and_price_go_in_separate_merge_patches_and_land_in_the_sandbox(sandbox, connect, gate):
    adapter = connect()
    updates = [
        ListingUpdate("S1", "E1", quantity=5, price=price("499", "399.5")),
        ListingUpdate("KURTA/RED #42", "E2", ranged=False, quantity=0),
    ]
    planned, _ = adapter.plan(updates)
    assert [(c.kind, c.operation, sorted(c.fields)) for c in planned] == [
        ("patch", "patchListingsItem", ["quantity"]), ("patch", "patchListingsItem", ["price"]),
        ("patch", "patchListingsItem", ["quantity", "ranged"])]

    results = push(adapter, gate, updates)

    assert sorted((r.sku, r.field, r.ok) for r in results) == [
        ("KURTA/RED #42", "quantity", True), ("KURTA/RED #42", "ranged", True),
        ("S1", "price", True), ("S1", "quantity", True)]
    assert values(sandbox) == {
        "S1": {"product_type": "PRODUCT", "quantity": 5, "ranged": True, "selling_price": "399.50", "mrp": "499.00"},
        "KURTA/RED #42": {"product_type": "PRODUCT", "quantity": 0, "ranged": False},
    }
    patches = calls(sandbox, "patchListingsItem")
    assert [c.path for c in patches] == ["/amazon/listings/2021-08-01/items/UA/S1"] * 2 + [
        "/amazon/listings/2021-08-01/items/UA/KURTA/RED #42"]
    assert [[(p["op"], p["path"]) for p in c.body["patches"]] for c in patches[:2]] == [
        [("merge", "/attributes/fulfillment_availability")], [("merge", "/attributes/purchasable_offer")]]
    offer = patches[1].body["patches"][0]["value"][0]
    assert offer["our_price"][0]["schedule"][0]["value_with_tax"] == 399.5
    assert offer["maximum_retail_price"][0]["schedule"][0]["value_with_tax"] == 499
    assert (offer["marketplace_id"], offer["currency"], offer["audience"]) == ("A21TJRUUN4KGV", "INR", "ALL")
    assert [c.request_id for c in patches] == ["test-0", "test-1", "test-2"]
    # Both SKUs' product types in one search, ahead of the batch's patches.
    assert gate.acquired == ["searchListingsItems", "patchListingsItem", "patchListingsItem",
                             "patchListingsItem"] == metered(sandbox)


def test_a_refused_price_does_not_fail_the_stock_update_of_the_same_sku(sandbox, connect, gate):
    adapter = connect()
    results = push(adapter, gate, [ListingUpdate("S1", "E1", quantity=3, price=price("100", "120"))])

    assert {(r.field, r.ok, r.code) for r in results} == {("quantity", True, None), ("price", False, "90220")}
    assert "higher than the maximum retail price" in next(r.message for r in results if not r.ok)
    assert values(sandbox)["S1"]["quantity"] == 3 and "selling_price" not in values(sandbox)["S1"]


def test_merge_keeps_the_handling_time_the_sale_price_and_the_b2b_offer(sandbox, connect, gate):
    adapter = connect()
    business = {"marketplace_id": "A21TJRUUN4KGV", "currency": "INR", "audience": "B2B",
                "our_price": [{"schedule": [{"value_with_tax": Decimal("350")}]}]}
    retail = {"marketplace_id": "A21TJRUUN4KGV", "currency": "INR", "audience": "ALL",
              "our_price": [{"schedule": [{"value_with_tax": Decimal("380")}]}],
              "discounted_price": [{"schedule": [{"value_with_tax": Decimal("360"), "start_at": "2026-12-01",
                                                  "end_at": "2026-12-31"}]}]}
    sandbox.state.listings["UA"] = {"S1": {"product_type": "SHIRT", "attributes": {
        "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 1,
                                      "lead_time_to_ship_max_days": 3}],
        "purchasable_offer": [retail, business]}}}

    results = push(adapter, gate, [ListingUpdate("S1", "E1", quantity=9, price=price("499", "399"))])

    assert all(r.ok for r in results)
    attributes = sandbox.state.listings["UA"]["S1"]["attributes"]
    assert attributes["fulfillment_availability"] == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 9, "lead_time_to_ship_max_days": 3}]
    offers = {o["audience"]: o for o in attributes["purchasable_offer"]}
    assert offers["B2B"] == business  # another offer instance: untouched
    assert offers["ALL"]["discounted_price"] == retail["discounted_price"]  # the sale price stays
    assert offers["ALL"]["our_price"][0]["schedule"][0]["value_with_tax"] == Decimal("399")


def test_a_replace_would_drop_what_a_merge_keeps(sandbox, connect):
    """The sandbox's own check that its `replace` is a replace: what the merge above protects."""
    import requests

    connect()
    token = requests.post(f"{sandbox.base_url}/amazon/auth/o2/token", data={
        "grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}, timeout=5).json()["access_token"]
    sandbox.state.listings["UA"] = {"S1": {"product_type": "SHIRT", "attributes": {"fulfillment_availability": [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 1, "lead_time_to_ship_max_days": 3}]}}}
    answer = requests.patch(f"{sandbox.base_url}/amazon/listings/2021-08-01/items/UA/S1",
                            params={"marketplaceIds": "A21TJRUUN4KGV"}, headers={"x-amz-access-token": token},
                            json={"productType": "SHIRT", "patches": [
                                {"op": "replace", "path": "/attributes/fulfillment_availability",
                                 "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 2}]}]}, timeout=5)
    assert answer.json()["status"] == "ACCEPTED"
    assert sandbox.state.listings["UA"]["S1"]["attributes"]["fulfillment_availability"] == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 2}]


def test_a_sku_amazon_does_not_know_fails_without_a_patch(sandbox, connect, gate):
    adapter = connect()
    sandbox.state.listings["UA"] = {"GONE": {"deleted": True}}
    results = push(adapter, gate, [ListingUpdate("GONE", "E1", quantity=3)])
    assert results == [
        ItemResult("GONE", "quantity", False, "NOT_FOUND", "SKU GONE is not listed on Amazon in A21TJRUUN4KGV")]
    assert calls(sandbox, "patchListingsItem") == []


def test_product_type_is_looked_up_once_per_sku(sandbox, connect, gate):
    adapter = connect()
    push(adapter, gate, [ListingUpdate("S1", "E1", quantity=1)])
    push(adapter, gate, [ListingUpdate("S1", "E1", quantity=2)])
    assert [c.operation for c in calls(sandbox) if c.operation != "lwaToken"] == [
        "getListingsItem", "patchListingsItem", "patchListingsItem"]
    assert listings(sandbox)["S1"]["quantity"] == 2


def test_throttling_gives_a_transient_429_without_retry_after_as_sp_api_does(sandbox, connect, gate):
    adapter = connect(quotas={"patchListingsItem": [0.01, 1]})
    push(adapter, gate, [ListingUpdate("S1", "E1", quantity=1)])
    with pytest.raises(TransientError) as caught:
        push(adapter, gate, [ListingUpdate("S1", "E1", quantity=2)])
    assert caught.value.status == 429
    assert caught.value.retry_after is None
    assert "QuotaExceeded" in str(caught.value)
    assert_no_secret(caught.value)


def test_server_errors_are_transient_and_client_errors_permanent(sandbox, connect, gate):
    adapter = connect(fail_status=503, fail_times=1)
    with pytest.raises(TransientError) as transient:
        push(adapter, gate, [ListingUpdate("S1", "E1", quantity=1)])
    assert transient.value.status == 503
    sandbox.state.channels["UA"].fail_status, sandbox.state.channels["UA"].fail_times = 400, 1
    with pytest.raises(PermanentError) as permanent:
        push(adapter, gate, [ListingUpdate("S1", "E1", quantity=1)])
    assert permanent.value.code == "INJECTED_FAULT"
    assert "x-amzn-RequestId" in str(permanent.value)


# -- tokens ----------------------------------------------------------------------------------------


def test_the_token_is_fetched_once_and_reused(sandbox, connect, gate):
    adapter = connect()
    push(adapter, gate, [ListingUpdate(f"S{n}", "E", quantity=n) for n in range(3)])
    assert len(calls(sandbox, "lwaToken")) == 1
    assert metered(sandbox) == ["searchListingsItems"] + ["patchListingsItem"] * 3


def test_the_token_is_renewed_a_minute_before_it_expires(sandbox, connect, gate):
    # Issued for 61s, so the client keeps it for 1s.
    adapter = connect(token_ttl_s=61)
    push(adapter, gate, [ListingUpdate("S1", "E", quantity=1)])
    push(adapter, gate, [ListingUpdate("S1", "E", quantity=2)])
    assert len(calls(sandbox, "lwaToken")) == 1
    time.sleep(1.1)
    push(adapter, gate, [ListingUpdate("S1", "E", quantity=3)])
    assert len(calls(sandbox, "lwaToken")) == 2
    assert listings(sandbox)["S1"]["quantity"] == 3


def test_a_token_the_sandbox_expired_early_is_refreshed_and_the_call_retried(sandbox, connect, gate):
    adapter = connect()
    push(adapter, gate, [ListingUpdate("S1", "E", quantity=1)])
    with sandbox.state.lock:
        for token, (channel, _) in list(sandbox.state.tokens.items()):
            sandbox.state.tokens[token] = (channel, time.time() - 1)

    results = push(adapter, gate, [ListingUpdate("S1", "E", quantity=2)])

    assert [r.ok for r in results] == [True]
    assert [(c.operation, c.status) for c in calls(sandbox)][-3:] == [
        ("patchListingsItem", 403), ("lwaToken", 200), ("patchListingsItem", 200)]
    assert gate.acquired.count("patchListingsItem") == 3


def test_a_refused_token_gives_auth_error_after_one_refresh(sandbox, connect, gate):
    adapter = connect(refuse_token=True)
    with pytest.raises(AuthError) as caught:
        push(adapter, gate, [ListingUpdate("S1", "E", quantity=1)])
    assert [(c.operation, c.status) for c in calls(sandbox)] == [
        ("lwaToken", 200), ("getListingsItem", 403), ("lwaToken", 200), ("getListingsItem", 403)]
    assert "Unauthorized" in str(caught.value)
    assert_no_secret(caught.value)


def test_wrong_credentials_are_an_auth_error_that_names_no_secret(sandbox, connect, gate):
    adapter = connect(secret=json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                         "refresh_token": REFRESH + "-revoked"}))
    with pytest.raises(AuthError) as caught:
        push(adapter, gate, [ListingUpdate("S1", "E", quantity=1)])
    assert "invalid_grant" in str(caught.value)
    assert_no_secret(caught.value)
    assert "revoked" not in str(caught.value)
    assert gate.acquired == []


@pytest.mark.parametrize("secret", ["not json " + REFRESH, json.dumps({"client_id": CLIENT_ID, "refresh_token": REFRESH})],
                         ids=["not-json", "missing-key"])
def test_unusable_credentials_are_an_auth_error_that_names_no_secret(connect, secret):
    with pytest.raises(AuthError) as caught:
        connect(secret=secret)
    assert "amazon-ua" in str(caught.value)
    assert_no_secret(caught.value)


def test_missing_credentials_and_seller_id_are_clear_errors(sandbox, connect, tmp_path):
    with pytest.raises(PermanentError, match="options.seller_id"):
        connect(options={"seller_id": ""})
    channel = ChannelConfig(id="UB", marketplace="amazon", base_url="http://127.0.0.1:9/amazon",
                            credentials_ref="amazon-ub", options={"seller_id": "UB"})
    with pytest.raises(AuthError, match="WHEEL_SECRET_AMAZON_UB"):
        make_adapter(channel, HttpConfig(1, 1), SecretStore({}, tmp_path))


# -- JSON_LISTINGS_FEED ----------------------------------------------------------------------------


def bulk_updates(count: int) -> list[ListingUpdate]:
    # Every 50th SKU asks for a selling price above its MRP, which Amazon rejects.
    return [ListingUpdate(f"B{n:03}", f"E{n}", quantity=n,
                          price=price("1000", "1200.00" if n % 50 == 0 else f"{500 + n}.25"))
            for n in range(count)]


def test_a_feed_carries_300_skus_with_per_message_failures(sandbox, connect, gate):
    adapter = connect(quotas={"searchListingsItems": [1000, 1000]})
    updates = bulk_updates(300)
    planned, _ = adapter.plan(updates, bulk=True)
    assert [(c.kind, c.operation, len(c.updates)) for c in planned] == [("feed", "createFeed", 300)]

    results = push(adapter, gate, updates, bulk=True)

    bad = {f"B{n:03}" for n in range(0, 300, 50)}
    assert len(results) == 600
    assert {r.sku for r in results if not r.ok} == bad
    assert {r.code for r in results if not r.ok} == {"90220"}
    state = values(sandbox)
    assert state["B007"] == {"product_type": "PRODUCT", "quantity": 7, "ranged": True, "selling_price": "507.25",
                             "mrp": "1000.00"}
    assert state["B050"]["quantity"] == 50 and "selling_price" not in state["B050"]  # only its price was refused
    (feed_call,) = calls(sandbox, "createFeed")
    document = feed_call.body
    assert document["header"] == {"sellerId": "UA", "version": "2.0", "issueLocale": "en_US"}
    # Each SKU's stock and price are two messages, judged apart.
    assert [m["messageId"] for m in document["messages"]] == list(range(1, 601))
    assert [m["sku"] for m in document["messages"][14:16]] == ["B007", "B007"]
    assert document["messages"][15]["patches"][0]["value"][0]["our_price"][0]["schedule"][0]["value_with_tax"] == 507.25
    assert gate.acquired == ["searchListingsItems"] * 15 + [
        "createFeedDocument", "createFeed", "getFeed", "getFeedDocument"] == metered(sandbox)
    assert [c.operation for c in calls(sandbox) if c.operation in UNMETERED] == [
        "lwaToken", "uploadFeedDocument", "downloadFeedDocument"]


def test_a_feed_skips_skus_amazon_does_not_know_and_reuses_known_product_types(sandbox, connect, gate):
    adapter = connect()
    sandbox.state.listings["UA"] = {"GONE": {"deleted": True}}
    push(adapter, gate, [ListingUpdate("K1", "E", quantity=1)])  # K1's product type is now known

    results = push(adapter, gate, [ListingUpdate(s, "E", quantity=4) for s in ("K1", "K2", "GONE")], bulk=True)

    assert sorted((r.sku, r.ok, r.code) for r in results) == [
        ("GONE", False, "NOT_FOUND"), ("K1", True, None), ("K2", True, None)]
    searches = [c for c in calls(sandbox, "searchListingsItems")]
    assert len(searches) == 1
    assert [m["sku"] for m in calls(sandbox, "createFeed")[0].body["messages"]] == ["K1", "K2"]


def test_a_feed_is_submitted_at_once_and_polled_until_done(sandbox, connect, gate):
    adapter = connect(feed_processing_s=2)
    (call,), _ = adapter.plan([ListingUpdate(s, "E", quantity=4) for s in ("P1", "P2")], bulk=True)

    submitted = adapter.execute(call, gate, request_id="test-0")

    assert isinstance(submitted, Submitted) and submitted.reference and submitted.results == ()
    assert "quantity" not in listings(sandbox).get("P1", {})  # Amazon has not applied it yet
    first = adapter.poll(submitted, gate)
    assert (first.finished, first.status, first.processing_s) == (False, "IN_PROGRESS", None)
    time.sleep(2.2)
    done = adapter.poll(submitted, gate)
    assert (done.finished, done.status, done.doubtful) == (True, "DONE", ())
    # Its time to DONE by Amazon's clock (createdTime to processingEndTime, whole seconds).
    assert done.processing_s is not None and 1 <= done.processing_s <= 3
    assert all(r.ok for r in done.results) and len(done.results) == 2
    assert values(sandbox)["P1"]["quantity"] == 4
    assert gate.acquired.count("createFeed") == 1 and gate.acquired.count("getFeed") == 2


def test_a_fatal_feed_without_a_report_leaves_its_messages_in_doubt_and_applies_nothing(sandbox, connect, gate):
    adapter = connect(feed_fatal=True)
    (call,), _ = adapter.plan([ListingUpdate(s, "E", quantity=4, price=price("10", "9")) for s in ("P1", "P2")],
                              bulk=True)
    submitted = adapter.execute(call, gate, request_id="test-0")

    polled = adapter.poll(submitted, gate)

    assert (polled.finished, polled.status, polled.results) == (True, "FATAL", ())
    assert sorted((u.sku, sorted(u.fields)) for u in polled.doubtful) == [
        ("P1", ["price"]), ("P1", ["quantity"]), ("P2", ["price"]), ("P2", ["quantity"])]
    assert "quantity" not in listings(sandbox).get("P1", {})


# -- reading back ----------------------------------------------------------------------------------


def test_read_listings_returns_what_was_pushed(sandbox, connect, gate):
    adapter = connect()
    push(adapter, gate, [ListingUpdate("S1", "E1", quantity=5, price=price("499", "399.5")),
                         ListingUpdate("S2", "E2", ranged=False, quantity=0)])
    sandbox.state.listings["UA"]["GONE"] = {"deleted": True}
    gate.acquired.clear()

    read = adapter.read_listings(["S1", "S2", "GONE"], gate)

    assert read == {
        "S1": MarketplaceListing("S1", ranged=True, quantity=5, price=price("499.00", "399.50")),
        "S2": MarketplaceListing("S2", ranged=False, quantity=0, price=None),
        "GONE": MarketplaceListing("GONE"),
    }
    assert gate.acquired == ["getListingsItem"] * 3


def test_errors_never_carry_secrets(sandbox, connect, gate):
    errors: list[Exception] = []
    for behaviour in ({"refuse_token": True}, {"fail_status": 500}, {"fail_status": 429}, {"fail_status": 400}):
        adapter = connect(**behaviour)
        with pytest.raises((MarketplaceError, QuotaWait)) as caught:
            push(adapter, gate, [ListingUpdate("S1", "E1", quantity=1)])
        errors.append(caught.value)
    # A 429 on the product-type look-up empties the look-ups' bucket (not the patches') and the
    # push waits for it.
    assert [type(e) for e in errors] == [AuthError, TransientError, QuotaWait, PermanentError]
    assert gate.throttles == ["getListingsItem"]
    for error in errors:
        assert_no_secret(error)


def test_capabilities_are_the_documented_ones(connect):
    capabilities = connect(options={"bulk_threshold": 50}).capabilities
    assert capabilities.max_batch == {"patchListingsItem": 1, "createFeed": 25_000}
    assert capabilities.quotas["createFeed"] == Quota(0.0083, 15)
    assert (capabilities.bulk_threshold, capabilities.reads_listings, capabilities.ranging_needs_quantity) == (50, True, True)
    # Unset, the channel's estimates choose between PATCHes and a feed (the service asks `choose`).
    assert (connect().capabilities.bulk_threshold, connect().capabilities.bulk_operation) == (None, "createFeed")


def test_a_feeds_assumed_processing_time_is_the_channels_option_until_one_is_observed(connect):
    work = Workload(skus=2_000, stock=0, price=2_000)  # 400 s by PATCH at 5/s
    conditions = PushConditions(quotas=QUOTAS)
    assumed = connect().choose(work, conditions)
    assert (assumed.path, assumed.feed_processing_s, assumed.feed_processing_observed) == ("feed", 300.0, False)
    assert connect(options={"feed_processing_s": 600}).choose(work, conditions).path == "patch"
    observed = connect(options={"feed_processing_s": 600}).choose(work, PushConditions(QUOTAS, 0.0, 100.0))
    assert (observed.path, observed.feed_processing_s, observed.feed_processing_observed) == ("feed", 100.0, True)
    for bad in (-1, "300", True):
        with pytest.raises(PermanentError, match="feed_processing_s"):
            connect(options={"feed_processing_s": bad})
    with pytest.raises(PermanentError, match="bulk_threshold"):
        connect(options={"bulk_threshold": 0})
