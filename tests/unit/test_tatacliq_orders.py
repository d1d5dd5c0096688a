"""Tata CLiQ's order answers: parsing (hardened) and mapping into domain orders and cancellations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox.orders import OrderBook
from sandbox.tatacliq import cancelled_orders_xml, new_orders_xml
from wheel.domain import Address, Cancellation, CancelledLine, Order, OrderLine, Payment
from wheel.marketplaces.errors import PermanentError
from wheel.marketplaces.tatacliq import orders

# The OMS team's sample, exactly.
SAMPLE = b"""<Orders><Order>
  <OrderNo>181219-001-345786</OrderNo>
  <AddressInfo>
    <Shipping><FirstName>Tamizhvendan</FirstName><LastName>Sembiyan</LastName>
      <Address1>Plot No 222</Address1><Address2>Ashok Nagar 42nd Street</Address2>
      <City>Chennai</City><State>TamilNadu</State><Pincode>600001</Pincode></Shipping>
    <Billing><FirstName>Tamizhvendan</FirstName><LastName>Sembiyan</LastName>
      <Address1>Plot No 222</Address1><Address2>Ashok Nagar 42nd Street</Address2>
      <City>Chennai</City><State>TamilNadu</State><Pincode>600001</Pincode></Billing>
  </AddressInfo>
  <PaymentInfo><PaymentCost>900.0</PaymentCost><PaymentId>000000-1545216772601</PaymentId></PaymentInfo>
  <OrderLines><OrderLine><TransactionId>200058001702351</TransactionId>
    <ArticleNumber>200374</ArticleNumber><Price>900.0</Price></OrderLine></OrderLines>
</Order></Orders>"""
WHAT = "Tata CLiQ GET /channels/UT/new-orders"
ADDRESS = Address("Tamizhvendan", "Sembiyan", "Plot No 222", "Ashok Nagar 42nd Street", "Chennai", "TamilNadu", "600001")


def page(body: bytes, job: str = "orders"):
    return orders.read_page(job, "UT", body, WHAT)


def test_the_documented_sample_maps_to_the_domain_order():
    result = page(SAMPLE)
    assert result.orders == [Order(
        channel_id="UT", order_id="181219-001-345786", bill_to=ADDRESS, ship_to=ADDRESS,
        payments=(Payment(Decimal("900.0"), "000000-1545216772601"),),
        lines=(OrderLine(line_id="200058001702351", sku="200374", quantity=1, line_total=Decimal("900.0")),),
    )]
    assert result.failures == [] and result.cancellations == []
    assert (result.cursor, result.calls) == (None, 1)
    raw = result.raw["181219-001-345786"]
    assert isinstance(raw, str) and raw.startswith("<Order>") and "<TransactionId>200058001702351" in raw


def broken(old: bytes, new: bytes) -> bytes:
    assert old in SAMPLE
    second = SAMPLE.replace(b"181219-001-345786", b"OK-2").replace(b"<Orders>", b"").replace(b"</Orders>", b"")
    return SAMPLE.replace(old, new, 1).replace(b"</Orders>", second + b"</Orders>")


@pytest.mark.parametrize("old, new, reason", [
    (b"<Pincode>600001</Pincode>", b"", "Shipping/Pincode is missing or blank"),
    (b"<ArticleNumber>200374</ArticleNumber>", b"<ArticleNumber> </ArticleNumber>",
     "OrderLine 200058001702351 ArticleNumber: the line has no SKU"),
    (b"<ArticleNumber>200374</ArticleNumber>", b"<ArticleNumber>2003 74</ArticleNumber>",
     "OrderLine 200058001702351 ArticleNumber: SKU '2003 74' has spaces or control characters"),
    (b"<Price>900.0</Price>", b"<Price>9e2</Price>", "OrderLine 200058001702351 Price '9e2' is not a plain decimal"),
    (b"<PaymentCost>900.0</PaymentCost>", b"<PaymentCost>-900</PaymentCost>", "PaymentInfo/PaymentCost '-900'"),
    (b"<TransactionId>200058001702351</TransactionId>", b"", "OrderLine 1 TransactionId is missing or blank"),
    (b"<Price>900.0</Price>", b"<Price>900.0</Price><Quantity>0</Quantity>", "Quantity '0' is not a whole number"),
    (SAMPLE[SAMPLE.index(b"<Billing>"):SAMPLE.index(b"</Billing>") + 10], b"", "AddressInfo/Billing is missing"),
])
def test_an_order_that_cannot_be_mapped_is_a_failure_with_its_raw_xml(old, new, reason):
    result = page(broken(old, new))
    assert [o.order_id for o in result.orders] == ["OK-2"]  # the rest of the answer still maps
    (failure,) = result.failures
    assert (failure.channel_id, failure.order_id, failure.kind) == ("UT", "181219-001-345786", "order")
    assert reason in failure.reason
    assert failure.raw.startswith("<Order>") and "181219-001-345786" in failure.raw
    assert "181219-001-345786" not in result.raw


def test_an_order_without_lines_or_without_orderno_is_a_failure():
    no_lines = SAMPLE.replace(SAMPLE[SAMPLE.index(b"<OrderLines>"):SAMPLE.index(b"</OrderLines>") + 13], b"")
    (failure,) = page(no_lines).failures
    assert failure.reason == "the order has no OrderLines/OrderLine"
    (failure,) = page(SAMPLE.replace(b"<OrderNo>181219-001-345786</OrderNo>", b"")).failures
    assert (failure.order_id, failure.reason) == ("", "OrderNo is missing or blank")


def test_an_orderno_twice_in_one_answer_is_a_failure_the_second_time():
    twice = SAMPLE.replace(b"</Orders>", SAMPLE[len(b"<Orders>"):])
    result = page(twice)
    assert [o.order_id for o in result.orders] == ["181219-001-345786"]
    assert [f.reason for f in result.failures] == ["OrderNo 181219-001-345786 appears more than once in the answer"]


def test_optional_fields_and_the_quantity_extension():
    body = (SAMPLE.replace(b"<LastName>Sembiyan</LastName>", b"").replace(b"<PaymentInfo>", b"<Ignored>")
            .replace(b"</PaymentInfo>", b"</Ignored>").replace(b"<Price>900.0</Price>", b"<Price>900.0</Price><Quantity>3</Quantity>"))
    (order,) = page(body).orders
    assert order.ship_to.last_name == "" and order.bill_to.last_name == ""
    assert order.payments == ()
    assert order.lines[0].quantity == 3 and order.lines[0].line_total == Decimal("900.0")


def test_cancelled_lines_are_grouped_into_one_cancellation_per_order():
    body = b"""<Orders>
      <Order><OrderNo>A</OrderNo><OrderLines>
        <OrderLine><TransactionId>A1</TransactionId><ArticleNumber>S1</ArticleNumber>
          <CancellationReason>Buyer changed their mind</CancellationReason></OrderLine></OrderLines></Order>
      <Order><OrderNo>B</OrderNo><OrderLines>
        <OrderLine><TransactionId>B1</TransactionId><ArticleNumber>S3</ArticleNumber>
          <CancellationReason>Out of stock</CancellationReason></OrderLine></OrderLines></Order>
      <Order><OrderNo>A</OrderNo><OrderLines>
        <OrderLine><TransactionId>A2</TransactionId><ArticleNumber>S2</ArticleNumber>
          <CancellationReason>Other</CancellationReason></OrderLine>
        <OrderLine><TransactionId>A1</TransactionId><ArticleNumber>S1</ArticleNumber></OrderLine></OrderLines></Order>
      <Order><OrderNo>C</OrderNo><OrderLines>
        <OrderLine><TransactionId>C1</TransactionId><ArticleNumber></ArticleNumber></OrderLine></OrderLines></Order>
    </Orders>"""
    result = page(body, "cancellations")
    assert result.cancellations == [
        Cancellation("UT", "A", (CancelledLine("A1", "S1", 1), CancelledLine("A2", "S2", 1)),
                     "tatacliq", "Buyer changed their mind", whole_order=False),
        Cancellation("UT", "B", (CancelledLine("B1", "S3", 1),), "tatacliq", "Out of stock", whole_order=False),
    ]
    (failure,) = result.failures
    assert (failure.order_id, failure.kind) == ("C", "cancellation")
    assert "ArticleNumber: the line has no SKU" in failure.reason and "<TransactionId>C1" in failure.raw
    assert result.raw["A"].count("<Order>") == 2 and result.orders == []


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Orders [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<Orders><Order><OrderNo>&c;</OrderNo></Order></Orders>"""


@pytest.mark.parametrize("body, says", [
    (BILLION_LAUGHS, "DOCTYPE and ENTITY declarations are refused"),
    (b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><Orders/>', "DOCTYPE"),
    (b'{"orders": []}', "not usable XML: not well-formed XML"),
    (b"", "message is empty"),
    (b"<Error><Message>no</Message></Error>", "answered <Error>, not <Orders>"),
])
def test_an_answer_that_is_not_an_orders_document_is_a_permanent_error(body, says):
    with pytest.raises(PermanentError) as caught:
        page(body)
    assert says in str(caught.value) and str(caught.value).startswith(WHAT)


def test_a_secret_echoed_in_an_unusable_answer_is_masked():
    with pytest.raises(PermanentError) as caught:
        orders.read_page("orders", "UT", b"<tok-secret-123/>", WHAT, secrets=("tok-secret-123",))
    assert "tok-secret-123" not in str(caught.value) and "***" in str(caught.value)


def test_an_answer_over_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(orders, "MAX_ANSWER_BYTES", 100)
    with pytest.raises(PermanentError) as caught:
        page(SAMPLE)
    assert str(caught.value) == f"{WHAT} answered {len(SAMPLE):,} bytes, over the 100-byte limit"


def test_what_the_sandbox_serves_maps_back_to_the_same_orders():
    book = OrderBook()
    made = book.create("UT", count=5, lines_per_order=3, seed=7)
    book.cancel("UT", explicit=[{"order_id": made[0].order_id, "line_ids": [made[0].lines[1].line_id], "reason": "R"},
                                {"order_id": made[1].order_id}])
    result = page(new_orders_xml(book.for_channel("UT")))
    assert [o.order_id for o in result.orders] == [o.order_id for o in made if o is not made[1]]
    first = result.orders[0]
    assert len(first.lines) == 3 and first.payments[0].amount == made[0].total
    assert [(l.line_id, l.sku, l.quantity, str(l.line_total)) for l in first.lines] == [
        (l.line_id, l.sku, l.quantity, l.price) for l in made[0].lines]
    cancelled = page(cancelled_orders_xml(book.for_channel("UT")), "cancellations").cancellations
    assert [(c.order_id, [l.line_id for l in c.lines]) for c in cancelled] == [
        (made[0].order_id, [made[0].lines[1].line_id]), (made[1].order_id, [l.line_id for l in made[1].lines])]
    assert cancelled[0].reason_text == "R"


# -- new orders read as they arrive ----------------------------------------------------------------


def many(count: int) -> bytes:
    book = OrderBook()
    book.create("UT", count=count, lines_per_order=2, seed=5)
    return new_orders_xml(book.for_channel("UT"))


def read_in_chunks(body: bytes, size: int, page_size: int | None) -> list:
    reader = orders.NewOrdersReader("UT", WHAT, page_size=page_size)
    pages = []
    for start in range(0, len(body), size):
        pages += reader.feed(body[start:start + size])
    return pages + reader.close()


@pytest.mark.parametrize("chunk", [1, 7, 4096, 10**9])
def test_orders_read_in_chunks_of_any_size_map_as_the_whole_answer_does(chunk):
    body = many(23)
    pages = read_in_chunks(body, chunk, page_size=10)
    assert [len(p.orders) for p in pages] == [10, 10, 3] and [p.calls for p in pages] == [1, 0, 0]
    whole = page(body)
    assert [o for p in pages for o in p.orders] == whole.orders
    assert {k: v for p in pages for k, v in p.raw.items()} == whole.raw


def test_a_page_boundary_at_the_end_leaves_an_empty_last_page():
    pages = read_in_chunks(many(20), 4096, page_size=10)
    assert [len(p.orders) for p in pages] == [10, 10, 0]


def test_flush_hands_on_the_orders_read_so_far_and_no_half_order():
    body = many(5)
    cut = body.index(b"</Order>", body.index(b"</Order>") + 1) + 20  # inside the third order
    reader = orders.NewOrdersReader("UT", WHAT)
    assert reader.feed(body[:cut]) == []
    (flushed,) = reader.flush()
    assert len(flushed.orders) == 2 and reader.read == 2 and flushed.calls == 1


@pytest.mark.parametrize("body", [
    BILLION_LAUGHS,
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Orders [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<Orders><Order><OrderNo>&x;</OrderNo></Order></Orders>'.encode("utf-16"),
], ids=["entities", "utf-16"])
def test_a_declaration_is_refused_even_split_between_chunks_or_in_utf16(body):
    for chunk in (1, 5, 4096):
        with pytest.raises(PermanentError, match="DOCTYPE"):
            read_in_chunks(body, chunk, page_size=10)


def test_an_answer_cut_short_is_refused_at_close_and_what_was_read_is_kept():
    body = many(3)
    reader = orders.NewOrdersReader("UT", WHAT)
    assert reader.feed(body[:body.rindex(b"</Orders>")]) == []
    with pytest.raises(PermanentError, match="not well-formed XML"):
        reader.close()
    assert reader.read == 3  # the third order's end tag had come; only </Orders> was missing


def test_the_byte_scan_alone_finds_a_declaration_fed_a_byte_at_a_time():
    reader = orders.NewOrdersReader("UT", WHAT)
    prolog = b'<?xml version="1.0"?><!ENTITY'
    with pytest.raises(PermanentError, match="DOCTYPE and ENTITY declarations are refused"):
        for byte in prolog:
            reader.feed(bytes([byte]))
