"""Tata CLiQ order pulls against the real sandbox server (in a thread of the test process)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from sandbox.app import ChannelBehaviour
from wheel.domain import Address, CancelledLine, OrderLine, Payment
from wheel.marketplaces.base import ChannelConfig, HttpConfig, OrderPage, PullWindow
from wheel.marketplaces.errors import AuthError, PermanentError, TransientError
from wheel.marketplaces.tatacliq import TataCliqAdapter, make_adapter, orders

TOKEN = "tok-ut-0123456789"
HTTP = HttpConfig(2, 10)
WINDOW = PullWindow(datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc))
HOME = {"first_name": "Meera", "last_name": "Iyer", "line1": "Flat 4", "line2": "", "city": "Kochi",
        "state": "Kerala", "zip_code": "682001"}


@pytest.fixture
def channel(sandbox, secrets) -> ChannelConfig:
    sandbox.state.channels["UT"] = ChannelBehaviour(marketplace="tatacliq", token=TOKEN)
    (secrets.secrets_dir / "tatacliq-ut").write_text(TOKEN)
    return ChannelConfig(id="UT", marketplace="tatacliq", base_url=f"{sandbox.base_url}/tatacliq",
                         credentials_ref="tatacliq-ut")


@pytest.fixture
def adapter(channel, secrets) -> TataCliqAdapter:
    return make_adapter(channel, HTTP, secrets)


def steer(sandbox, path: str, body: dict) -> dict:
    response = requests.post(f"{sandbox.base_url}/_sandbox/{path}", json={"channel": "UT", **body}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def pull(adapter, job: str, gate) -> OrderPage:
    (page,) = list(adapter.pull(job, WINDOW, None, gate))
    return page


def test_every_created_order_comes_back_mapped_and_cancelled_lines_too(sandbox, adapter, gate):
    created = steer(sandbox, "orders", {"count": 25, "lines_per_order": 2, "seed": 3})["created"]
    created += steer(sandbox, "orders", {"orders": [
        {"order_id": "EXPLICIT-1", "ship_to": HOME, "payment_ref": "PAY-X1",
         "lines": [{"sku": "A-1", "price": "1299.50", "line_id": "T1"}, {"sku": "B-2", "price": "10", "quantity": 3}]},
    ]})["created"]
    assert len(created) == 26

    page = pull(adapter, "orders", gate)
    assert (page.failures, page.cancellations, page.cursor, page.calls) == ([], [], None, 1)
    by_id = {order.order_id: order for order in page.orders}
    assert sorted(by_id) == sorted(o["order_id"] for o in created)
    for placed in created:
        order = by_id[placed["order_id"]]
        assert order.payments == (Payment(Decimal(placed["total"]), placed["payment_ref"]),)
        assert order.lines == tuple(OrderLine(l["line_id"], l["sku"], l["quantity"], Decimal(l["price"]))
                                    for l in placed["lines"])
        assert order.ship_to == Address(**placed["ship_to"]) and order.bill_to == Address(**placed["bill_to"])
        assert placed["order_id"] in page.raw[placed["order_id"]]
    explicit = by_id["EXPLICIT-1"]
    assert explicit.payments == (Payment(Decimal("1309.50"), "PAY-X1"),)
    assert [(l.line_id, l.quantity) for l in explicit.lines][0] == ("T1", 1) and explicit.lines[1].quantity == 3
    assert explicit.ship_to == explicit.bill_to == Address(**HOME)

    # One line of EXPLICIT-1, and three whole orders (the oldest open ones).
    steer(sandbox, "cancellations", {"cancellations": [{"order_id": "EXPLICIT-1", "line_ids": ["T1"],
                                                        "reason": "Buyer changed their mind"}]})
    whole = steer(sandbox, "cancellations", {"count": 3})["cancelled"]
    page = pull(adapter, "cancellations", gate)
    assert page.failures == [] and page.orders == []
    cancelled = {c.order_id: c for c in page.cancellations}
    assert sorted(cancelled) == sorted(["EXPLICIT-1"] + [w["order_id"] for w in whole])
    assert cancelled["EXPLICIT-1"].lines == (CancelledLine("T1", "A-1", 1),)
    assert (cancelled["EXPLICIT-1"].reason_code, cancelled["EXPLICIT-1"].reason_text) == ("tatacliq", "Buyer changed their mind")
    placed_by_id = {o["order_id"]: o for o in created}
    for done in whole:
        assert cancelled[done["order_id"]].lines == tuple(
            CancelledLine(l["line_id"], l["sku"], l["quantity"]) for l in placed_by_id[done["order_id"]]["lines"])
        assert cancelled[done["order_id"]].whole_order is False and cancelled[done["order_id"]].reason_text
    assert any(line.quantity > 1 for c in cancelled.values() for line in c.lines)  # the <Quantity> extension

    # New orders: the wholly cancelled ones are gone; the partly cancelled one stays, as placed.
    again = {order.order_id: order for order in pull(adapter, "orders", gate).orders}
    assert sorted(again) == sorted(set(by_id) - {w["order_id"] for w in whole})
    assert again["EXPLICIT-1"] == explicit

    assert gate.acquired == ["newOrders", "cancelledOrders", "newOrders"]
    recorded = [(c.method, c.path, c.operation, c.status) for c in sandbox.state.calls if c.marketplace == "tatacliq"]
    assert recorded == [("GET", "/tatacliq/channels/UT/new-orders", "newOrders", 200),
                        ("GET", "/tatacliq/channels/UT/cancelled-orders", "cancelledOrders", 200),
                        ("GET", "/tatacliq/channels/UT/new-orders", "newOrders", 200)]


def test_no_orders_is_one_empty_page(sandbox, adapter, gate):
    for job in ("orders", "cancellations"):
        assert pull(adapter, job, gate) == OrderPage(calls=1)


def test_an_order_with_a_bad_sku_is_a_failure_and_the_rest_map(sandbox, adapter, gate):
    steer(sandbox, "orders", {"orders": [{"order_id": "BAD", "lines": [{"sku": "HAS SPACE", "price": "5"}]},
                                         {"order_id": "GOOD", "lines": [{"sku": "S1", "price": "5"}]}]})
    page = pull(adapter, "orders", gate)
    assert [o.order_id for o in page.orders] == ["GOOD"]
    (failure,) = page.failures
    assert (failure.order_id, failure.kind) == ("BAD", "order")
    assert "ArticleNumber: SKU 'HAS SPACE' has spaces" in failure.reason and "HAS SPACE" in failure.raw


def test_a_wrong_token_is_an_auth_error_without_the_token(sandbox, channel, secrets, gate):
    (secrets.secrets_dir / "tatacliq-ut").write_text("wrong-token-987654")
    adapter = make_adapter(channel, HTTP, secrets)
    with pytest.raises(AuthError) as caught:
        pull(adapter, "orders", gate)
    assert caught.value.status == 401
    assert "wrong-token-987654" not in str(caught.value) and TOKEN not in str(caught.value)
    assert sandbox.state.calls[-1].status == 401


def test_a_channel_quota_on_new_orders_gives_a_transient_error(sandbox, adapter, gate):
    sandbox.state.channels["UT"].quotas = {"newOrders": [0.01, 1]}
    pull(adapter, "orders", gate)
    pull(adapter, "cancellations", gate)  # its own quota: none
    with pytest.raises(TransientError) as caught:
        pull(adapter, "orders", gate)
    assert caught.value.status == 429 and caught.value.retry_after and caught.value.retry_after > 1


def test_server_errors_are_transient(sandbox, adapter, gate):
    sandbox.state.channels["UT"].fail_status = 503
    with pytest.raises(TransientError):
        pull(adapter, "cancellations", gate)


def test_an_unknown_job_is_refused(adapter, gate):
    with pytest.raises(ValueError, match="no 'returns' pull"):
        pull(adapter, "returns", gate)
    assert gate.acquired == []


# -- answers the sandbox would never give --------------------------------------------------------


@pytest.fixture
def hostile(secrets):
    """A server that answers every GET with `answer["body"]` (200, XML)."""
    answer = {"body": b""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(answer["body"])))
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    (secrets.secrets_dir / "tatacliq-uh").write_text(TOKEN)

    def adapter(**options):
        channel = ChannelConfig(id="UH", marketplace="tatacliq", base_url=f"http://127.0.0.1:{server.server_port}",
                                credentials_ref="tatacliq-uh", options=options)
        return make_adapter(channel, HTTP, secrets)

    answer["adapter"] = adapter
    yield adapter(), answer
    server.shutdown()
    server.server_close()


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE Orders [<!ENTITY a "aaaaaaaaaa">'
          + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&%s;" % bytes([97 + i])) * 10) for i in range(8))
          + b"]><Orders><Order><OrderNo>&i;</OrderNo></Order></Orders>")


@pytest.mark.parametrize("body, says", [
    (LAUGHS, "DOCTYPE and ENTITY declarations are refused"),
    (b"<html><body>Service Unavailable</body></html>", "answered <html>, not <Orders>"),
    (b"not xml at all", "not well-formed XML"),
])
def test_a_hostile_or_foreign_answer_is_a_permanent_error(hostile, gate, body, says):
    adapter, answer = hostile
    answer["body"] = body
    with pytest.raises(PermanentError) as caught:
        pull(adapter, "orders", gate)
    assert says in str(caught.value) and "Tata CLiQ GET /channels/UH/new-orders" in str(caught.value)


@pytest.mark.parametrize("job", ["orders", "cancellations"])
def test_an_answer_over_the_channels_limit_is_not_read_past_it(hostile, gate, job):
    _, answer = hostile
    adapter = answer["adapter"](max_answer_mb=1 / 16)  # 65,536 bytes
    answer["body"] = b"<Orders>" + b" " * (1 << 18) + b"</Orders>"
    with pytest.raises(PermanentError) as caught:
        list(adapter.pull(job, WINDOW, None, gate))
    assert "answered more than 65,536 bytes" in str(caught.value)
    assert "wheelctl channels set UH --option max_answer_mb=" in str(caught.value)


@pytest.mark.parametrize("value", ["0", "-1", "lots", True, "nan", "inf"])
def test_a_bad_answer_limit_is_refused_naming_the_option(hostile, value):
    _, answer = hostile
    with pytest.raises(PermanentError, match="options.max_answer_mb must be a number of megabytes above 0"):
        answer["adapter"](max_answer_mb=value)


def test_new_orders_come_in_pages_as_the_answer_is_read(sandbox, adapter, gate):
    created = steer(sandbox, "orders", {"count": orders.PAGE_ORDERS * 2 + 5, "seed": 11})["created"]
    pages = list(adapter.pull("orders", WINDOW, None, gate))
    assert [len(p.orders) for p in pages] == [orders.PAGE_ORDERS, orders.PAGE_ORDERS, 5]
    assert [p.calls for p in pages] == [1, 0, 0] and all(p.cursor is None and not p.warnings for p in pages)
    assert [o.order_id for p in pages for o in p.orders] == [o["order_id"] for o in created]
    assert all(set(p.raw) == {o.order_id for o in p.orders} for p in pages)
    assert gate.acquired == ["newOrders"]
