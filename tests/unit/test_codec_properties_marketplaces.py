"""Property-based tests of the marketplaces' answer parsers: order pages and push results. Any
answer (structured fuzz of the documented shapes with odd values, and random JSON or bytes) either
maps into valid domain values, an order that cannot be mapped becoming an Unmappable that says
why, or is refused with the marketplace's own error (PermanentError, a MarketplaceError) in words.
A regression example (@example) marks each input hypothesis found that raised anything else."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wheel.domain import (
    Cancellation,
    CancellationRequest,
    ItemResult,
    ListingUpdate,
    MarketplaceListing,
    Order,
    Price,
    Unmappable,
    sku_problem,
)
from wheel.marketplaces.amazon import mapping as amazon_mapping
from wheel.marketplaces.amazon import orders as amazon_orders
from wheel.marketplaces.base import Call, OrderPage
from wheel.marketplaces.errors import MarketplaceError
from wheel.marketplaces.flipkart import mapping as flipkart_mapping
from wheel.marketplaces.flipkart import orders as flipkart_orders
from wheel.marketplaces.tatacliq import mapping as tatacliq_mapping
from wheel.marketplaces.tatacliq import orders as tatacliq_orders

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies: what json.loads(answer, parse_float=Decimal) can give ------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(10**30), 10**30),
    st.decimals(allow_nan=False, allow_infinity=False),  # parse_float=Decimal
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),  # the NaN/Infinity literals
    st.text(max_size=10),
    st.sampled_from(["", " ", "NaN", "1E+999999", "-1", "0", "12.345", "INR", "USD", "SKU1", "S K U", "\x00",
                     "CANCELLED", "SUCCESS", "FAILURE", "WARNING", "ERROR", "ENABLED", "ACTIVE", "ARCHIVED"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=15,
)


def odd(valid):
    """The documented value, or anything at all in its place."""
    return st.one_of(valid, valid, scalars, json_values)


def maybe(d: dict) -> st.SearchStrategy[dict]:
    """A documented object with some keys missing and any value odd."""
    return st.fixed_dictionaries({}, optional={key: odd(value) for key, value in d.items()})


def is_json(value) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


# -- what a page must hold --------------------------------------------------------------------------


def _money_ok(value) -> bool:
    return isinstance(value, Decimal) and value.is_finite() and value >= 0


def assert_valid_page(page: OrderPage, *, raw_is_json: bool = True) -> None:
    assert isinstance(page, OrderPage)
    for order in page.orders:
        assert isinstance(order, Order) and isinstance(order.order_id, str) and order.order_id
        assert order.lines
        for line in order.lines:
            assert sku_problem(line.sku) is None, line
            assert type(line.quantity) is int and line.quantity >= 1, line
            assert _money_ok(line.line_total), line
            assert isinstance(line.line_id, str) and line.line_id
        assert all(_money_ok(p.amount) and isinstance(p.reference, str) for p in order.payments)
        for address in (order.bill_to, order.ship_to):
            assert all(isinstance(v, str) for v in vars(address).values())
    for cancellation in [*page.cancellations, *page.requests]:
        assert isinstance(cancellation, (Cancellation, CancellationRequest))
        assert cancellation.order_id and cancellation.lines
        for line in cancellation.lines:
            assert sku_problem(line.sku) is None and type(line.quantity) is int and line.quantity >= 0
    for failure in page.failures:
        assert isinstance(failure, Unmappable) and isinstance(failure.reason, str) and failure.reason.strip()
        assert failure.kind in ("order", "cancellation")
        assert not raw_is_json or is_json(failure.raw), failure.raw
    assert all(isinstance(k, str) for k in page.raw)
    assert not raw_is_json or is_json(page.raw)


def assert_refused_in_words(exc: MarketplaceError) -> None:
    assert str(exc).strip(), "a MarketplaceError says why"


# -- Amazon: searchOrders pages --------------------------------------------------------------------

money = maybe({"amount": st.sampled_from(["10.00", "0", "999.5"]), "currencyCode": st.just("INR")})
amazon_item = maybe({
    "orderItemId": st.sampled_from(["I1", "I2"]),
    "quantityOrdered": st.integers(0, 3),
    "product": maybe({"sellerSku": st.sampled_from(["SKU1", "SKU2"]), "price": maybe({"unitPrice": money})}),
    "cancellation": maybe({"cancellationExecution": maybe({"cancelledBy": st.just("BUYER")}),
                           "cancellationRequest": maybe({"requester": st.just("BUYER"), "cancelReason": st.just("x")})}),
})
amazon_order = maybe({
    "orderId": st.sampled_from(["405-1", "405-2"]),
    "orderItems": st.lists(amazon_item, max_size=3),
    "fulfillment": maybe({"fulfillmentStatus": st.sampled_from(["UNSHIPPED", "SHIPPED", "CANCELLED", "PENDING"])}),
    "recipient": maybe({"deliveryAddress": maybe({k: st.just(v) for k, v in {
        "name": "Asha Rao", "addressLine1": "1 MG Road", "addressLine2": "x", "city": "Bengaluru",
        "stateOrRegion": "KA", "postalCode": "560001"}.items()})}),
    "proceeds": maybe({"grandTotal": money}),
})


@PROPERTY
@given(st.one_of(st.lists(amazon_order, max_size=3), st.lists(json_values, max_size=3)),
       st.one_of(st.none(), st.text(max_size=5)))
@example([{"orderId": "405-1", "orderItems": [{"orderItemId": "I1", "quantityOrdered": 1, "product": {
    "sellerSku": "SKU1", "price": {"unitPrice": {"amount": "1E+999999", "currencyCode": "INR"}}}}],
    "recipient": {"deliveryAddress": {"name": "A", "addressLine1": "l", "city": "c", "stateOrRegion": "s",
                                      "postalCode": "p"}},
    "proceeds": {"grandTotal": {"amount": "1", "currencyCode": "INR"}}}], None)
@example([{"orderId": "405-1", "orderItems": [{"orderItemId": "I1", "quantityOrdered": 1}], "x": float("nan")}], None)
def test_amazon_order_pages_map_or_say_why(orders, token):
    assert_valid_page(amazon_orders.read_page("UZ", orders, "INR", token))


@PROPERTY
@given(json_values)
def test_amazon_next_token_is_a_token_or_none(answer):
    token = amazon_orders.next_token(answer)
    assert token is None or (isinstance(token, str) and token)


# -- Amazon: listings PATCH answers, feed processing reports, listings items -----------------------

updates = st.builds(ListingUpdate, st.sampled_from(["SKU1", "SKU2", "SKU3"]), st.just("EAN"),
                    st.one_of(st.none(), st.booleans()), st.one_of(st.none(), st.integers(0, 10)),
                    st.one_of(st.none(), st.just(Price(Decimal("10.00"), Decimal("9.00")))))


def assert_results(results: list, expected: list[tuple[str, str]]) -> None:
    assert all(isinstance(r, ItemResult) for r in results)
    assert [(r.sku, r.field) for r in results] == expected
    for r in results:
        assert isinstance(r.ok, bool)
        assert r.code is None or isinstance(r.code, str)
        assert r.message is None or isinstance(r.message, str)
        if not r.ok:
            assert r.code, r


issue = maybe({"code": st.just("8541"), "message": st.just("bad"), "severity": st.sampled_from(["ERROR", "WARNING"]),
               "messageId": st.integers(1, 4)})


@PROPERTY
@given(updates, st.one_of(maybe({"status": st.sampled_from(["ACCEPTED", "INVALID", "VALID"]),
                                 "issues": st.lists(issue, max_size=3)}), json_values))
@example(ListingUpdate("SKU1", "EAN", quantity=1), {"status": "INVALID", "issues": 5})
def test_amazon_patch_answers_give_a_verdict_per_field(update, answer):
    assert_results(amazon_mapping.submission_results(update, answer), [(update.sku, f) for f in sorted(update.fields)])


@PROPERTY
@given(st.lists(updates, min_size=1, max_size=3),
       st.one_of(maybe({"issues": st.lists(issue, max_size=4), "summary": maybe({"messagesProcessed": st.integers(0, 5)})}),
                 json_values),
       st.booleans())
@example([ListingUpdate("SKU1", "EAN", quantity=1)], {"issues": 7}, True)
def test_amazon_feed_reports_judge_or_doubt_every_message(items, report, complete):
    messages = amazon_mapping.feed_messages([(u, "SHIRT") for u in items if u.fields])
    results, doubtful = amazon_mapping.report_results(messages, report, complete=complete)
    judged = {(r.sku, r.field) for r in results}
    for _, part, _ in messages:
        in_doubt = part in doubtful
        assert in_doubt or all((part.sku, f) in judged for f in part.fields)
    assert_results(results, [(r.sku, r.field) for r in results])


listing_item = maybe({
    "summaries": st.lists(maybe({"marketplaceId": st.just(amazon_mapping.INDIA), "productType": st.just("SHIRT")}), max_size=2),
    "fulfillmentAvailability": st.lists(maybe({"fulfillmentChannelCode": st.just("DEFAULT"), "quantity": st.integers(0, 9)}),
                                        max_size=2),
    "attributes": maybe({
        "purchasable_offer": st.lists(maybe({
            "marketplace_id": st.just(amazon_mapping.INDIA), "audience": st.just("ALL"),
            "our_price": st.just([{"schedule": [{"value_with_tax": Decimal("9.50")}]}]),
            "maximum_retail_price": st.lists(st.fixed_dictionaries({"schedule": st.lists(
                maybe({"value_with_tax": st.sampled_from([Decimal("10"), Decimal("1E+999999"), "12.345"])}), max_size=1)}),
                max_size=1)}), max_size=2),
        "list_price": st.lists(maybe({"marketplace_id": st.just(amazon_mapping.INDIA), "value_with_tax": st.just(Decimal("10"))}),
                               max_size=1),
    }),
})


def assert_valid_listing(listing: MarketplaceListing, sku: str) -> None:
    assert isinstance(listing, MarketplaceListing) and listing.sku == sku
    assert listing.ranged is None or isinstance(listing.ranged, bool)
    assert listing.quantity is None or type(listing.quantity) is int
    if listing.price is not None:
        assert all(isinstance(v, Decimal) and v.is_finite() for v in (listing.price.mrp, listing.price.selling_price))


@PROPERTY
@given(st.one_of(listing_item, json_values))
@example({"attributes": {"purchasable_offer": [{"our_price": [{"schedule": [{"value_with_tax": "1E+999999"}]}],
                                                "maximum_retail_price": [{"schedule": [{"value_with_tax": 10}]}]}]}})
@example({"summaries": True})
def test_amazon_listings_items_read_or_say_nothing(item):
    assert_valid_listing(amazon_mapping.listing_from_item("SKU1", item, amazon_mapping.INDIA), "SKU1")
    product_type = amazon_mapping.product_type_of(item, amazon_mapping.INDIA)
    assert product_type is None or (isinstance(product_type, str) and product_type)


# -- Flipkart: shipment search and details, orders and cancellations ---------------------------------

flipkart_item = maybe({
    "orderItemId": st.sampled_from(["OI1", "OI2", 7]), "orderId": st.sampled_from(["OD1", "OD2"]),
    "sku": st.sampled_from(["SKU1", "SKU2"]), "quantity": st.integers(0, 3), "status": st.sampled_from(["APPROVED", "CANCELLED"]),
    "priceComponents": maybe({"totalPrice": st.sampled_from([Decimal("499"), 499, Decimal("-1")])}),
    "cancellationReason": st.just("x"), "cancellationSubReason": st.just("y"),
})
flipkart_address = maybe({k: st.just(v) for k, v in {"firstName": "Asha", "lastName": "Rao", "addressLine1": "1 MG Road",
                                                     "addressLine2": "x", "city": "Bengaluru", "state": "KA",
                                                     "pinCode": "560001", "landmark": "near"}.items()})
shipment = maybe({"shipmentId": st.sampled_from(["S1", "S2", 3]), "orderItems": st.lists(flipkart_item, max_size=3),
                  "hold": st.booleans()})
detail = maybe({"shipmentId": st.sampled_from(["S1", "S2", 3]), "deliveryAddress": flipkart_address,
                "billingAddress": flipkart_address, "orderItems": st.lists(flipkart_item, max_size=2)})


@PROPERTY
@given(st.one_of(maybe({"shipments": st.lists(shipment, max_size=3), "hasMore": st.booleans(),
                        "nextPageUrl": st.sampled_from(["/v3/shipments/filter?next=x", "https://evil.example/x", "x"])}),
                 json_values),
       st.one_of(maybe({"shipments": st.lists(detail, max_size=3)}), json_values))
@example({}, {"shipments": 1})
def test_flipkart_order_pages_map_or_are_refused_in_words(search, details):
    try:
        shipments, next_url = flipkart_orders.search_answer(search)
        if next_url is not None:
            path = flipkart_orders.page_path(next_url, "https://api.flipkart.net/sellers")
            assert path.startswith("/sellers/")
    except MarketplaceError as exc:
        assert_refused_in_words(exc)
        return
    assert flipkart_orders.shipment_ids(shipments) == list(dict.fromkeys(flipkart_orders.shipment_ids(shipments)))
    page = flipkart_orders.orders_page("UF", shipments, flipkart_orders.details_answer(details))
    assert_valid_page(page)
    for cancellation_type in flipkart_orders.CANCELLATION_TYPES[:1]:
        assert_valid_page(flipkart_orders.cancellations_page("UF", shipments, cancellation_type))


# -- Flipkart: listing update answers, listings look-ups -------------------------------------------

flipkart_sku_answer = maybe({"status": st.sampled_from(["SUCCESS", "FAILURE", "WARNING", "success"]),
                             "errors": st.lists(maybe({"code": st.just("E1"), "description": st.just("bad"),
                                                       "severity": st.sampled_from(["ERROR", "WARNING"])}), max_size=2),
                             "attribute_errors": st.lists(maybe({"attribute": st.just("mrp"), "message": st.just("x")}),
                                                          max_size=1)})


@PROPERTY
@given(st.lists(updates, min_size=1, max_size=3, unique_by=lambda u: u.sku),
       st.sampled_from(sorted(flipkart_mapping.OPERATION_FIELDS)),
       st.one_of(st.dictionaries(st.sampled_from(["SKU1", "SKU2", "SKU3"]), flipkart_sku_answer, max_size=3), json_values))
@example([ListingUpdate("SKU1", "EAN", quantity=1)], "updateInventory", {"SKU1": {"status": "FAILURE", "errors": 5}})
@example([ListingUpdate("SKU1", "EAN", quantity=1)], "updateInventory", {"SKU1": {"status": "FAILURE", "attribute_errors": True}})
def test_flipkart_listing_answers_give_a_verdict_per_field(batch, operation, answer):
    results = flipkart_mapping.results(operation, batch, answer)
    assert_results(results, [(u.sku, f) for u in batch for f in flipkart_mapping.covered(operation, u)])
    detail = flipkart_mapping.error_detail(answer)
    assert detail is None or (isinstance(detail, tuple) and isinstance(detail[1], str))


flipkart_listing = maybe({"product_id": st.just("FSN1"), "listing_status": st.sampled_from(["ACTIVE", "INACTIVE"]),
                          "archived_status": st.sampled_from(["ARCHIVED", "NONE"]),
                          "locations": st.lists(maybe({"id": st.sampled_from(["L1", "L2"]), "status": st.just("ENABLED"),
                                                       "inventory": st.integers(0, 9)}), max_size=2),
                          "price": maybe({"mrp": st.sampled_from([Decimal("10"), 10, "10"]),
                                          "selling_price": st.sampled_from([Decimal("9"), 9])})})


@PROPERTY
@given(st.one_of(maybe({"available": st.dictionaries(st.sampled_from(["SKU1", "SKU2"]), flipkart_listing, max_size=2),
                        "unavailable": st.lists(st.just("SKU3"), max_size=1), "invalid": st.lists(st.just("SKU4"), max_size=1)}),
                 json_values),
       st.one_of(st.none(), st.just("L1")))
@example({"available": ["SKU1"]}, None)
@example({"available": {"SKU1": {"price": {"mrp": float("nan"), "selling_price": 9}, "locations": [{"id": "L1"}]}}}, None)
@example({"available": {"SKU1": {"product_id": "FSN1", "locations": True}}}, None)
def test_flipkart_listings_answers_read_or_say_nothing(answer, location):
    available, missing = flipkart_mapping.listings_answer(answer)
    assert all(isinstance(v, dict) for v in available.values()) and all(isinstance(v, str) for v in missing.values())
    for sku, held in available.items():
        assert_valid_listing(flipkart_mapping.marketplace_listing(sku, held, location), sku)
        assert flipkart_mapping.product_id(held) is None or isinstance(flipkart_mapping.product_id(held), str)
        assert all(isinstance(i, str) for i in flipkart_mapping.location_ids(held))


# -- Tata CLiQ: order XML, listing answers -----------------------------------------------------------

xml_text = st.one_of(st.sampled_from(["", " ", "900.0", "-1", "1e3", "NaN", "0", "3", "SKU1", "S K U", "x" * 50]),
                     st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8))


@st.composite
def tatacliq_answers(draw) -> bytes:
    def element(tag: str) -> str:
        return "" if draw(st.integers(0, 5)) == 0 else f"<{tag}>{escape(draw(xml_text))}</{tag}>"

    def address(kind: str) -> str:
        return f"<{kind}>" + "".join(element(t) for t in ("FirstName", "LastName", "Address1", "Address2", "City",
                                                          "State", "Pincode")) + f"</{kind}>"

    orders = []
    for _ in range(draw(st.integers(0, 3))):
        lines = "".join("<OrderLine>" + element("TransactionId") + element("ArticleNumber") + element("Price")
                        + element("Quantity") + element("CancellationReason") + "</OrderLine>"
                        for _ in range(draw(st.integers(0, 2))))
        orders.append("<Order>" + element("OrderNo") + "<AddressInfo>" + address("Shipping") + address("Billing")
                      + "</AddressInfo><PaymentInfo>" + element("PaymentCost") + element("PaymentId") + "</PaymentInfo>"
                      + f"<OrderLines>{lines}</OrderLines></Order>")
    root = draw(st.sampled_from(["Orders", "Orders", "Order", "html"]))
    return f"<{root}>{''.join(orders)}</{root}>".encode()


@PROPERTY
@given(st.sampled_from(["orders", "cancellations"]), st.one_of(tatacliq_answers(), st.binary(max_size=200)))
@example("orders", b"")
@example("cancellations", b"\xef\xbb\xbf<Orders/>")
def test_tatacliq_order_answers_map_or_are_refused_in_words(job, body):
    try:
        page = tatacliq_orders.read_page(job, "UT", body, "Tata CLiQ GET /new-orders")
    except MarketplaceError as exc:
        assert_refused_in_words(exc)
        assert "Tata CLiQ GET /new-orders" in str(exc)
        return
    assert_valid_page(page, raw_is_json=False)
    assert all(isinstance(failure.raw, str) for failure in page.failures)


@PROPERTY
@given(st.lists(updates, min_size=1, max_size=3, unique_by=lambda u: u.sku),
       st.one_of(maybe({"status": st.just("OK"), "items": st.lists(maybe({
           "sku": st.sampled_from(["SKU1", "SKU2"]), "status": st.sampled_from(["SUCCESS", "FAILED", "MAYBE"]),
           "reason": st.just("no")}), max_size=3)}), json_values))
def test_tatacliq_listing_answers_give_a_verdict_per_sku(batch, answer):
    call = Call("ranging", tuple(batch), frozenset({"ranged"}), kind="ranging")
    assert_results(tatacliq_mapping.results(call, answer), [(u.sku, "ranged") for u in batch])


def test_nan_is_what_the_json_literal_gives():
    # Why the strategies hold float NaN and infinities beside Decimals: Python's json parses the
    # NaN and Infinity literals with parse_constant, not parse_float.
    assert math.isnan(json.loads("NaN", parse_float=Decimal))


def _summary(pages: list[OrderPage]) -> tuple:
    return ([o for p in pages for o in p.orders], [(f.order_id, f.reason) for p in pages for f in p.failures])


@PROPERTY
@given(st.one_of(tatacliq_answers(), st.binary(max_size=200),
                 st.sampled_from([b'<!DOCTYPE Orders [<!ENTITY x SYSTEM "file:///etc/passwd">]><Orders/>',
                                  b"<Orders><Order><OrderNo>1</OrderNo></Order></Orders>"])),
       st.lists(st.integers(1, 40), max_size=8))
def test_tatacliq_new_orders_read_as_they_arrive_as_read_whole(body, cuts):
    """The streamed reader (the adapter feeds it chunks as they arrive) gives what one read of the
    whole answer gives, wherever the chunks are cut: a DOCTYPE split between chunks included."""
    def read(chunks: list[bytes]):
        reader = tatacliq_orders.NewOrdersReader("UT", "Tata CLiQ GET /new-orders", page_size=2)
        try:
            pages = [page for chunk in chunks for page in reader.feed(chunk)] + reader.close()
        except MarketplaceError as exc:
            assert_refused_in_words(exc)
            return "refused"
        for page in pages:
            assert_valid_page(page, raw_is_json=False)
        return _summary(pages)

    chunks, rest = [], body
    for cut in cuts:
        chunks.append(rest[:cut])
        rest = rest[cut:]
    assert read([*chunks, rest]) == read([body])


@PROPERTY
@given(st.one_of(st.text(max_size=40), st.sampled_from(["/v3/shipments/filter?x=1", "/sellers/v3/x", "//evil.example/x",
                                                         "https://api.flipkart.net/sellers/v3/x", "https://evil.example/x"])))
def test_flipkart_next_page_urls_stay_on_flipkart_or_are_refused(next_url):
    try:
        path = flipkart_orders.page_path(next_url, "https://api.flipkart.net/sellers")
    except MarketplaceError as exc:
        assert_refused_in_words(exc)
        return
    assert path.startswith("/sellers/") and "://" not in path.split("?")[0] and not path.startswith("//")
