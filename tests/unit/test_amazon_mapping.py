"""Pure Amazon mapping: PATCH bodies, money as JSON numbers, feed documents, answers to ItemResults, planning."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from wheel.domain import ItemResult, ListingUpdate, MarketplaceListing, Price
from wheel.marketplaces.amazon import mapping
from wheel.marketplaces.amazon.adapter import QUOTAS
from wheel.marketplaces.base import Workload
from wheel.quota import effective_quotas

INDIA = "A21TJRUUN4KGV"

# A processing report shaped per listings-feed-processing-report-schema-v2.json (also validated
# against it in test_spapi_models.py).
REPORT = {
    "header": {"sellerId": "A1SELLER", "version": "2.0", "feedId": "50014018890"},
    "issues": [
        {"messageId": 2, "sku": "S2", "code": "90220", "severity": "WARNING", "message": "just a warning"},
        {"messageId": 3, "sku": "S3", "code": "8541", "severity": "ERROR", "message": "price above MRP",
         "attributeName": "purchasable_offer"},
        {"messageId": 3, "sku": "S3", "code": "9999", "severity": "ERROR", "message": "second error"},
    ],
    "summary": {"errors": 2, "warnings": 1, "messagesProcessed": 3, "messagesAccepted": 2, "messagesInvalid": 1},
}


def price(mrp: str, selling: str) -> Price:
    return Price(mrp=Decimal(mrp), selling_price=Decimal(selling))


def body_json(update: ListingUpdate, product_type: str = "SHIRT") -> dict:
    """The PATCH body as Amazon receives it (money read back exactly)."""
    return json.loads(mapping.dumps(mapping.patch_body(update, product_type, INDIA, "INR")), parse_float=Decimal)


# -- PATCH bodies ---------------------------------------------------------------------------------


def test_quantity_patch_is_a_merge_that_keeps_the_handling_time():
    assert body_json(ListingUpdate("S1", "E1", quantity=7)) == {
        "productType": "SHIRT",
        "patches": [{"op": "merge", "path": "/attributes/fulfillment_availability",
                     "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 7}]}],
    }


def test_price_patch_merges_the_b2c_offer_with_the_mrp_inside_it():
    assert body_json(ListingUpdate("S1", "E1", price=price("1299.5", "999"))) == {
        "productType": "SHIRT",
        "patches": [
            {"op": "merge", "path": "/attributes/purchasable_offer",
             "value": [{"marketplace_id": INDIA, "currency": "INR", "audience": "ALL",
                        "our_price": [{"schedule": [{"value_with_tax": Decimal("999.00")}]}],
                        "maximum_retail_price": [{"schedule": [{"value_with_tax": Decimal("1299.50")}]}]}]},
        ],
    }


def test_the_mrp_can_go_to_list_price_as_a_channel_option():
    body = json.loads(mapping.dumps(mapping.patch_body(ListingUpdate("S1", "E1", price=price("1299.5", "999")), "SHIRT",
                                                       INDIA, "INR", mapping.MRP_LIST_PRICE)), parse_float=Decimal)
    assert [(p["op"], p["path"]) for p in body["patches"]] == [
        ("merge", "/attributes/purchasable_offer"), ("merge", "/attributes/list_price")]
    assert "maximum_retail_price" not in body["patches"][0]["value"][0]
    assert body["patches"][1]["value"] == [{"marketplace_id": INDIA, "currency": "INR", "value_with_tax": Decimal("1299.50")}]


def test_stock_and_price_are_planned_as_separate_patches():
    calls, refused = mapping.plan([ListingUpdate("S1", "E1", ranged=True, quantity=3, price=price("10", "9"))], feed=False)
    assert refused == [] and [sorted(c.fields) for c in calls] == [["quantity", "ranged"], ["price"]]
    assert [(c.updates[0].quantity, c.updates[0].price) for c in calls] == [(3, None), (None, price("10", "9"))]


def test_deranging_without_a_quantity_sends_quantity_zero():
    body = body_json(ListingUpdate("S1", "E1", ranged=False))
    assert body["patches"][0]["value"] == [{"fulfillment_channel_code": "DEFAULT", "quantity": 0}]


def test_money_is_a_json_number_with_two_decimals():
    text = mapping.dumps(mapping.patch_body(ListingUpdate("S1", "E1", price=price("499", "0.1")), "X", INDIA, "INR"))
    assert '"value_with_tax":0.10}' in text
    assert '"value_with_tax":499.00}' in text
    mixed = {"a": Decimal("0.1") + Decimal("0.2"), "b": [1, True, None, "é"]}
    assert mapping.dumps(mixed) == '{"a":0.30,"b":[1,true,null,"\\u00e9"]}'


def test_a_float_never_becomes_money():
    with pytest.raises(TypeError):
        mapping.dumps({"value_with_tax": 499.0})


def test_sku_is_escaped_in_the_path():
    assert mapping.item_path("A1 SELLER", "KURTA/RED #42?") == (
        "/listings/2021-08-01/items/A1%20SELLER/KURTA%2FRED%20%2342%3F")


# -- feed documents -------------------------------------------------------------------------------


def test_feed_document_numbers_patch_messages_from_one_with_stock_and_price_apart():
    updates = [ListingUpdate("S1", "E1", quantity=1, price=price("20", "15.5")), ListingUpdate("S2", "E2", quantity=2)]
    items = [(updates[0], "SHIRT"), (updates[1], "SHOES")]
    document = json.loads(mapping.dumps(mapping.feed_document("A1SELLER", items, INDIA, "INR")))
    assert document["header"] == {"sellerId": "A1SELLER", "version": "2.0", "issueLocale": "en_US"}
    assert [(m["messageId"], m["sku"], m["operationType"], m["productType"]) for m in document["messages"]] == [
        (1, "S1", "PATCH", "SHIRT"), (2, "S1", "PATCH", "SHIRT"), (3, "S2", "PATCH", "SHOES")]
    assert [p["path"] for m in document["messages"] for p in m["patches"]] == [
        "/attributes/fulfillment_availability", "/attributes/purchasable_offer", "/attributes/fulfillment_availability"]


def test_feed_requests():
    assert mapping.create_feed_document_request() == {"contentType": "application/json; charset=UTF-8"}
    assert mapping.create_feed_request("doc-1", INDIA) == {
        "feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [INDIA], "inputFeedDocumentId": "doc-1"}


# -- answers --------------------------------------------------------------------------------------


def messages(*updates: ListingUpdate):
    return mapping.feed_messages([(u, "SHIRT") for u in updates])


def test_report_errors_fail_that_messages_fields_and_the_rest_succeed():
    # Messages: 1 S1 stock, 2 S2 stock, 3 S3 stock, 4 S3 price; the report names message 3.
    results, doubtful = mapping.report_results(messages(
        ListingUpdate("S1", "E", quantity=1), ListingUpdate("S2", "E", quantity=2),
        ListingUpdate("S3", "E", ranged=True, quantity=3, price=price("10", "12"))),
        {**REPORT, "summary": {**REPORT["summary"], "messagesProcessed": 4}})
    assert doubtful == []
    assert results == [
        ItemResult("S1", "quantity", True), ItemResult("S2", "quantity", True),
        ItemResult("S3", "quantity", False, "8541", "price above MRP"),
        ItemResult("S3", "ranged", False, "8541", "price above MRP"),
        ItemResult("S3", "price", True),
    ]


def test_a_report_error_outside_any_message_fails_every_message():
    report = {**REPORT, "issues": [{"severity": "ERROR", "code": "4000001", "message": "not a feed"}]}
    results, doubtful = mapping.report_results(
        messages(ListingUpdate("S1", "E", quantity=1), ListingUpdate("S2", "E", quantity=2)), report)
    assert [(r.ok, r.code) for r in results] == [(False, "4000001")] * 2 and doubtful == []


def test_messages_a_short_or_fatal_report_does_not_name_are_in_doubt():
    sent = messages(ListingUpdate("S1", "E", quantity=1), ListingUpdate("S2", "E", quantity=2),
                    ListingUpdate("S3", "E", quantity=3))
    short = {**REPORT, "summary": {**REPORT["summary"], "messagesProcessed": 2}}  # 3 messages were sent
    results, doubtful = mapping.report_results(sent, short)
    assert [(r.sku, r.ok) for r in results] == [("S3", False)] and [u.sku for u in doubtful] == ["S1", "S2"]
    results, doubtful = mapping.report_results(sent, {**REPORT, "summary": {**REPORT["summary"], "messagesProcessed": 3}},
                                               complete=False)  # FATAL
    assert [(r.sku, r.ok) for r in results] == [("S3", False)] and [u.sku for u in doubtful] == ["S1", "S2"]


def test_accepted_submission_succeeds_for_every_field():
    update = ListingUpdate("S1", "E", ranged=False, quantity=0)
    answer = {"sku": "S1", "status": "ACCEPTED", "submissionId": "f1dc", "issues": []}
    assert mapping.submission_results(update, answer) == [
        ItemResult("S1", "quantity", True), ItemResult("S1", "ranged", True)]


def test_invalid_submission_fails_with_the_first_error_issue():
    answer = {"sku": "S1", "status": "INVALID", "submissionId": "f1dc", "issues": [
        {"code": "100", "message": "a warning", "severity": "WARNING", "categories": []},
        {"code": "90220", "message": "'our_price' is invalid", "severity": "ERROR", "categories": ["INVALID_PRICE"]},
        {"code": "200", "message": "another error", "severity": "ERROR", "categories": []},
    ]}
    results = mapping.submission_results(ListingUpdate("S1", "E", quantity=1, price=price("2", "3")), answer)
    assert results == [ItemResult("S1", "price", False, "90220", "'our_price' is invalid"),
                       ItemResult("S1", "quantity", False, "90220", "'our_price' is invalid")]


def test_an_unreadable_submission_answer_is_a_failure():
    assert mapping.submission_results(ListingUpdate("S1", "E", quantity=1), None) == [
        ItemResult("S1", "quantity", False, "UNREADABLE", "Amazon answered status None")]


def test_listing_is_read_from_a_get_listings_item_answer():
    answer = json.loads(json.dumps({
        "sku": "S1",
        "summaries": [{"marketplaceId": "A1F83G8C2ARO7P", "productType": "OTHER"},
                      {"marketplaceId": INDIA, "productType": "SHIRT"}],
        "attributes": {
            "purchasable_offer": [{"marketplace_id": INDIA, "currency": "INR",
                                   "our_price": [{"schedule": [{"value_with_tax": 399.5}]}]}],
            "list_price": [{"marketplace_id": INDIA, "currency": "INR", "value_with_tax": 499}],
            "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 99}],
        },
        "fulfillmentAvailability": [{"fulfillmentChannelCode": "AMAZON_EU", "quantity": 1},
                                    {"fulfillmentChannelCode": "DEFAULT", "quantity": 4}],
    }), parse_float=Decimal)
    assert mapping.product_type_of(answer, INDIA) == "SHIRT"
    assert mapping.listing_from_item("S1", answer, INDIA) == MarketplaceListing(
        "S1", ranged=True, quantity=4, price=price("499.00", "399.50"))
    assert mapping.listing_from_item("S1", {"sku": "S1"}, INDIA) == MarketplaceListing("S1")


# -- planning -------------------------------------------------------------------------------------


def updates(count: int) -> list[ListingUpdate]:
    return [ListingUpdate(f"S{n}", "E", quantity=n) for n in range(count)]


def test_by_patch_each_sku_gets_its_own_patches():
    calls, refused = mapping.plan([ListingUpdate("S1", "E", quantity=1, price=price("2", "1"))] + updates(198), feed=False)
    assert refused == []
    assert len(calls) == 200  # S1's stock and price apart
    assert {(c.kind, c.operation, len(c.updates)) for c in calls} == {("patch", "patchListingsItem", 1)}
    assert (calls[0].fields, calls[1].fields) == ({"quantity"}, {"price"})


def test_a_feed_counts_stock_and_price_as_two_messages():
    both = [ListingUpdate(f"S{n}", "E", quantity=1, price=price("2", "1")) for n in range(12_501)]
    calls, _ = mapping.plan(both, feed=True)
    assert [len(c.updates) for c in calls] == [12_500, 1]


def test_by_feed_the_skus_go_in_one_feed():
    (call,), _ = mapping.plan(updates(200), feed=True)
    assert (call.kind, call.operation, len(call.updates), call.fields) == ("feed", "createFeed", 200, {"quantity"})


def test_feeds_hold_at_most_25000_messages():
    calls, _ = mapping.plan(updates(25_001), feed=True)
    assert [len(c.updates) for c in calls] == [25_000, 1]


@pytest.mark.parametrize(("update", "code", "refused_fields", "sent_fields"), [
    (ListingUpdate("S", "E", quantity=-1, price=price("2", "1")), "INVALID_QUANTITY", {"quantity"}, {"price"}),
    (ListingUpdate("S", "E", ranged=True), "QUANTITY_REQUIRED", {"ranged"}, None),
    (ListingUpdate("S", "E", ranged=False, quantity=4), "INCONSISTENT_QUANTITY", {"ranged", "quantity"}, None),
    (ListingUpdate("S", "E", quantity=1, price=price("2", "1.005")), "INVALID_PRICE", {"price"}, {"quantity"}),
    (ListingUpdate("S", "E", price=price("0", "0")), "INVALID_PRICE", {"price"}, None),
    (ListingUpdate("S", "E", price=price("NaN", "1")), "INVALID_PRICE", {"price"}, None),
], ids=["negative-quantity", "listed-without-quantity", "deranged-with-stock", "three-decimals", "zero", "nan"])
def test_values_amazon_cannot_take_are_refused_and_the_rest_still_goes(update, code, refused_fields, sent_fields):
    calls, refused = mapping.plan([update], feed=False)
    assert {(r.field, r.ok, r.code) for r in refused} == {(f, False, code) for f in refused_fields}
    assert [c.fields for c in calls] == ([sent_fields] if sent_fields else [])


def test_search_query_takes_up_to_20_skus_without_commas():
    assert mapping.search_query(INDIA, ["A", "B"]) == {
        "marketplaceIds": INDIA, "identifiers": "A,B", "identifiersType": "SKU", "includedData": "summaries",
        "pageSize": 20}
    for bad in ([], [f"S{n}" for n in range(21)], ["A,B"]):
        with pytest.raises(ValueError):
            mapping.search_query(INDIA, bad)


def test_an_update_with_nothing_to_push_makes_no_call():
    assert mapping.plan([ListingUpdate("S1", "E1")], feed=False) == ([], [])
    assert mapping.plan([ListingUpdate("S1", "E1")], feed=True) == ([], [])


# -- PATCH or feed: by what finishes first ----------------------------------------------------------

FIVE_MINUTES, TWO_HOURS = 300.0, 7200.0


def reprice(skus: int) -> Workload:
    return Workload(skus=skus, stock=0, price=skus)


def test_a_small_batch_goes_by_patch():
    choice = mapping.choose_path(Workload(skus=10, stock=10, price=0), QUOTAS, feed_processing_s=FIVE_MINUTES)
    assert (choice.path, choice.patch_calls, choice.patch_s, choice.feed_s) == ("patch", 10, 2.0, FIVE_MINUTES)


def test_20000_skus_at_5_a_second_go_by_feed_when_a_feed_takes_5_minutes():
    choice = mapping.choose_path(reprice(20_000), QUOTAS, feed_processing_s=FIVE_MINUTES)
    # 20,000 PATCHes at 5/s: 4,000 s; one feed: 300 s.
    assert (choice.path, choice.patch_s, choice.feed_s, choice.feeds, choice.reason) == (
        "feed", 4000.0, FIVE_MINUTES, 1, "estimate")


def test_500_skus_go_by_patch_when_this_channels_feeds_take_2_hours():
    choice = mapping.choose_path(reprice(500), QUOTAS, feed_processing_s=TWO_HOURS, observed=True)
    assert (choice.path, choice.patch_s, choice.feed_s, choice.feed_processing_observed) == (
        "patch", 100.0, TWO_HOURS, True)


def test_stock_and_price_of_one_sku_are_two_patches_and_two_feed_messages():
    choice = mapping.choose_path(Workload(skus=15_000, stock=15_000, price=15_000), QUOTAS,
                                 feed_processing_s=FIVE_MINUTES)
    assert (choice.patch_calls, choice.patch_s, choice.feeds) == (30_000, 6000.0, 2)


def test_the_patch_rate_is_the_channels_effective_one_quota_scale_included():
    # 20,000 PATCHes: at 5/s x 10 they take 400 s (a 300 s feed wins); at x 20, 200 s (PATCH wins).
    assert mapping.choose_path(reprice(20_000), effective_quotas(QUOTAS, 10), feed_processing_s=FIVE_MINUTES).path == "feed"
    faster = mapping.choose_path(reprice(20_000), effective_quotas(QUOTAS, 20), feed_processing_s=FIVE_MINUTES)
    assert (faster.path, faster.patch_rate_per_s, faster.patch_s) == ("patch", 100.0, 200.0)
    # A per-operation override of the channel counts too.
    slow = effective_quotas(QUOTAS, 20, {"patchListingsItem": [1, 1]})
    assert mapping.choose_path(reprice(500), slow, feed_processing_s=FIVE_MINUTES).path == "feed"


def test_waiting_for_a_createfeed_token_counts_against_the_feed():
    # 1,800 PATCHes: 360 s; a feed: 300 s, or 420 s once its createFeed token is 2 minutes away.
    assert mapping.choose_path(reprice(1_800), QUOTAS, feed_processing_s=FIVE_MINUTES).path == "feed"
    waiting = mapping.choose_path(reprice(1_800), QUOTAS, feed_processing_s=FIVE_MINUTES, feed_token_wait_s=120.0)
    assert (waiting.path, waiting.feed_s, waiting.feed_token_wait_s) == ("patch", 420.0, 120.0)


def test_a_tie_goes_by_patch_and_nothing_to_send_needs_no_feed():
    assert mapping.choose_path(reprice(1_500), QUOTAS, feed_processing_s=FIVE_MINUTES).path == "patch"
    assert mapping.choose_path(Workload(0, 0, 0), QUOTAS, feed_processing_s=0.0).path == "patch"


def test_a_bulk_threshold_set_on_the_channel_overrides_the_estimates_which_are_still_given():
    below = mapping.choose_path(reprice(20_000), QUOTAS, feed_processing_s=FIVE_MINUTES, bulk_threshold=30_000)
    assert (below.path, below.reason, below.patch_s, below.feed_s) == ("patch", "bulk_threshold", 4000.0, FIVE_MINUTES)
    at = mapping.choose_path(reprice(3), QUOTAS, feed_processing_s=TWO_HOURS, bulk_threshold=3)
    assert (at.path, at.reason) == ("feed", "bulk_threshold")


def test_a_choice_says_which_path_and_both_estimates():
    choice = mapping.choose_path(reprice(20_000), QUOTAS, feed_processing_s=FIVE_MINUTES)
    assert choice.describe() == (
        "20000 SKUs go by feed: by PATCH ~4000 s (20000 calls at 5.00/s), by feed ~300 s (createFeed token in 0 s "
        "+ processing 300 s, assumed: none observed yet)")
    payload = choice.payload()
    assert (payload["path"], payload["patch_s"], payload["feed_s"], payload["skus"]) == ("feed", 4000.0, 300.0, 20_000)
    json.dumps(payload)
