"""Flipkart's pure mapping: batching, bodies, whole-rupee refusals and per-SKU answers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from wheel.domain import ItemResult, ListingUpdate, MarketplaceListing, Price
from wheel.marketplaces.flipkart import mapping


def stock(sku: str, quantity: int | None, *, ranged: bool | None = None, listed: bool = True) -> ListingUpdate:
    return ListingUpdate(sku=sku, ean=f"E-{sku}", ranged=ranged, quantity=quantity, listed=listed)


def priced(sku: str, mrp: str, selling: str) -> ListingUpdate:
    return ListingUpdate(sku=sku, ean=f"E-{sku}", price=Price(Decimal(mrp), Decimal(selling)))


# -- plan -------------------------------------------------------------------------------------


def test_inventory_goes_in_batches_of_ten():
    calls, refused = mapping.plan([stock(f"S{i}", i) for i in range(25)])
    assert refused == []
    assert [len(c.updates) for c in calls] == [10, 10, 5]
    assert {c.operation for c in calls} == {"updateInventory"}
    assert [u.sku for c in calls for u in c.updates] == [f"S{i}" for i in range(25)]


def test_ranged_and_quantity_travel_together_in_one_inventory_call():
    update = stock("S1", 7, ranged=True)
    calls, _ = mapping.plan([update])
    assert len(calls) == 1
    assert calls[0].fields == {"ranged", "quantity"}
    body = mapping.inventory_body(calls[0].updates, {"S1": "FSN1"}, {"S1": ("LOC1",)})
    assert body == {"S1": {"product_id": "FSN1", "locations": [{"id": "LOC1", "status": "ENABLED", "inventory": 7}]}}


def test_deranging_sends_disabled_with_no_stock_even_without_a_quantity():
    update = stock("S1", None, ranged=False, listed=False)
    calls, refused = mapping.plan([update])
    assert refused == []
    assert calls[0].fields == {"ranged"}
    body = mapping.inventory_body(calls[0].updates, {"S1": "FSN1"}, {"S1": ("LOC1", "LOC2")})
    assert body["S1"]["locations"] == [{"id": "LOC1", "status": "DISABLED", "inventory": 0},
                                       {"id": "LOC2", "status": "DISABLED", "inventory": 0}]


def test_a_quantity_alone_keeps_the_current_listing_status():
    listed, unlisted = stock("A", 5, listed=True), stock("B", 0, listed=False)
    assert mapping.location_status(listed) == "ENABLED"
    assert mapping.location_status(unlisted) == "DISABLED"


def test_ranging_without_a_quantity_is_refused_rather_than_guessed():
    calls, refused = mapping.plan([stock("S1", None, ranged=True)])
    assert calls == []
    assert refused == [ItemResult("S1", "ranged", False, "QUANTITY_REQUIRED", refused[0].message)]


def test_unlisting_comes_before_prices_and_listing_after():
    calls, _ = mapping.plan([stock("ON", 3, ranged=True), priced("P", "1299", "999"),
                             stock("OFF", 0, ranged=False, listed=False)])
    assert [(c.operation, c.updates[0].sku) for c in calls] == [
        ("updateInventory", "OFF"), ("updatePrice", "P"), ("updateInventory", "ON")]


def test_a_sku_appears_once_per_call():
    calls, _ = mapping.plan([stock("S1", 1), stock("S2", 2), stock("S1", 3)])
    assert [[u.sku for u in c.updates] for c in calls] == [["S1", "S2"], ["S1"]]


def test_whole_rupee_prices_are_sent_as_integers():
    calls, refused = mapping.plan([priced("P", "1299.00", "999")])
    assert refused == []
    assert calls[0].operation == "updatePrice" and calls[0].fields == {"price"}
    assert mapping.price_body(calls[0].updates, {"P": "FSNP"}) == {
        "P": {"product_id": "FSNP", "price": {"mrp": 1299, "selling_price": 999, "currency": "INR"}}}


def test_a_price_with_paise_is_refused_not_rounded_and_not_sent():
    calls, refused = mapping.plan([priced("P", "1299", "999.50"), priced("Q", "500", "400")])
    assert refused == [ItemResult("P", "price", False, "WHOLE_RUPEES_ONLY",
                                  "Flipkart takes whole rupees only; 999.50 has paise")]
    assert [u.sku for c in calls for u in c.updates] == ["Q"]


def test_both_values_with_paise_are_named():
    _, refused = mapping.plan([priced("P", "1299.99", "999.50")])
    assert refused[0].message == "Flipkart takes whole rupees only; 1299.99 and 999.50 have paise"


def test_price_refusal_leaves_the_stock_change_of_the_same_sku():
    update = ListingUpdate(sku="S", ean="E", quantity=4, price=Price(Decimal("10.5"), Decimal("9")))
    calls, refused = mapping.plan([update])
    assert [r.field for r in refused] == ["price"]
    assert [(c.operation, c.fields) for c in calls] == [("updateInventory", {"quantity"})]


# -- answers ----------------------------------------------------------------------------------


def test_per_sku_failure_inside_a_200_answer():
    updates = [stock("OK", 1, ranged=True), stock("BAD", 2), stock("WARN", 3)]
    answer = {
        "OK": {"status": "SUCCESS", "errors": [], "attribute_errors": []},
        "BAD": {"status": "FAILURE", "errors": [
            {"severity": "WARNING", "code": 1, "description": "just a note"},
            {"severity": "ERROR", "code": 4105, "description": "inventory must be a whole number >= 0", "path": "x"}]},
        "WARN": {"status": "WARNING", "errors": [{"severity": "WARNING", "code": 77, "description": "slow to apply"}]},
    }
    assert mapping.results("updateInventory", updates, answer) == [
        ItemResult("OK", "ranged", True), ItemResult("OK", "quantity", True),
        ItemResult("BAD", "quantity", False, "4105", "inventory must be a whole number >= 0"),
        ItemResult("WARN", "quantity", True, "77", "slow to apply"),
    ]


def test_attribute_errors_count_and_name_the_attribute():
    answer = {"P": {"status": "FAILURE", "errors": [], "attribute_errors": [
        {"severity": "ERROR", "code": 12, "description": "too low", "attribute": "selling_price"}]}}
    assert mapping.results("updatePrice", [priced("P", "10", "9")], answer) == [
        ItemResult("P", "price", False, "12", "selling_price: too low")]


@pytest.mark.parametrize("answer", [{}, None, "oops", {"S": "SUCCESS"}])
def test_a_sku_the_answer_does_not_mention_is_not_taken_as_done(answer):
    (result,) = mapping.results("updateInventory", [stock("S", 1)], answer)
    assert (result.ok, result.code) == (False, "NO_VERDICT")


def test_an_unknown_status_is_a_failure():
    (result,) = mapping.results("updatePrice", [priced("P", "10", "9")], {"P": {"status": "PROCESSING"}})
    assert (result.ok, result.code) == (False, "UNKNOWN_STATUS")


def test_error_detail_of_a_rejected_request():
    body = {"errors": [{"severity": "ERROR", "code": 4000, "description": "at most 10 SKUs per call; got 11"}]}
    assert mapping.error_detail(body) == ("4000", "at most 10 SKUs per call; got 11")
    assert mapping.error_detail({"S": {"status": "FAILURE", "errors": [{"code": 9, "description": "no"}]}}) == (
        "9", "SKU S: no")
    assert mapping.error_detail({"code": "X", "message": "y"}) is None
    assert mapping.error_detail([1, 2]) is None


# -- listings ---------------------------------------------------------------------------------

DETAIL = {
    "product_id": "FSNABC",
    "price": {"mrp": 1299, "selling_price": 999, "currency": "INR"},
    "locations": [{"id": "LOC1", "status": "ENABLED", "inventory": 12}],
}


def test_listings_answer_splits_held_from_missing():
    available, missing = mapping.listings_answer(
        {"available": {"A": DETAIL}, "unavailable": ["B"], "invalid": ["C"]})
    assert list(available) == ["A"]
    assert set(missing) == {"B", "C"}
    assert mapping.product_id(available["A"]) == "FSNABC"
    assert mapping.location_ids(available["A"]) == ("LOC1",)


def test_marketplace_listing_reads_status_stock_and_price():
    assert mapping.marketplace_listing("A", DETAIL, None) == MarketplaceListing(
        "A", ranged=True, quantity=12, price=Price(Decimal("1299"), Decimal("999")))


def test_several_locations_need_the_configured_one():
    detail = {**DETAIL, "locations": [{"id": "L1", "status": "ENABLED", "inventory": 1},
                                      {"id": "L2", "status": "DISABLED", "inventory": 0}]}
    assert mapping.marketplace_listing("A", detail, None).quantity is None
    # On sale at L1, so ranged, whichever location is the channel's; the stock is the channel's.
    assert mapping.marketplace_listing("A", detail, "L2") == MarketplaceListing(
        "A", ranged=True, quantity=0, price=Price(Decimal("1299"), Decimal("999")))
    disabled = {**detail, "locations": [{**loc, "status": "DISABLED"} for loc in detail["locations"]]}
    assert mapping.marketplace_listing("A", disabled, "L1").ranged is False
    assert mapping.choose_location(("L1", "L2"), None)[0] is None
    assert mapping.choose_location((), None)[0] is None
    assert mapping.choose_location(("L1",), None) == ("L1", None)


@pytest.mark.parametrize("status, expected", [
    ({"listing_status": "ACTIVE", "archived_status": "NONE"}, None),
    ({"listing_status": "ACTIVE"}, None),
    ({"listing_status": "INACTIVE", "archived_status": "NONE"}, "LISTING_INACTIVE"),
    ({"listing_status": "ACTIVE", "archived_status": "ARCHIVED"}, "LISTING_ARCHIVED"),
])
def test_a_listing_inactive_or_archived_is_not_on_sale(status, expected):
    found = mapping.not_on_sale({**DETAIL, **status})
    assert (found[0] if found else None) == expected
    assert mapping.marketplace_listing("A", {**DETAIL, **status}, None).ranged is (expected is None)


def test_a_verdict_on_a_listing_not_on_sale_is_a_failure_that_keeps_flipkarts_own_refusal():
    why = "Flipkart's listing is INACTIVE: the SKU is not on sale until the seller activates it"
    took = mapping.not_on_sale_result(ItemResult("A", "quantity", True), "LISTING_INACTIVE", why)
    assert took == ItemResult("A", "quantity", False, "LISTING_INACTIVE",
                              f"{why}; Flipkart took the stock all the same, for when it is on sale")
    refused = mapping.not_on_sale_result(ItemResult("A", "price", False, "4202", "too dear"), "LISTING_INACTIVE", why)
    assert (refused.code, refused.message) == ("LISTING_INACTIVE", f"{why}; Flipkart refused the update too (4202: too dear)")
