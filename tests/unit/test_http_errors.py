"""The one error taxonomy: HTTP statuses and network failures to Auth/Transient/Permanent errors."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from wheel.domain import ItemResult, ListingUpdate, Price
from wheel.marketplaces import UnknownMarketplace, adapter_for
from wheel.marketplaces.base import ChannelConfig, HttpConfig
from wheel.marketplaces.errors import AuthError, ConfigurationError, MarketplaceError, PermanentError, TransientError
from wheel.marketplaces.http import new_session, raise_for_status, send
from wheel.marketplaces.tatacliq import TataCliqAdapter, make_adapter
from wheel.marketplaces.tatacliq import mapping as tatacliq_mapping
from wheel.secrets import SecretStore

TOKEN = "tok-SECRET-4f9a1c2e7b"


def response(status: int, body: bytes | str | dict | None = None, headers: dict | None = None) -> requests.Response:
    built = requests.Response()
    built.status_code = status
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    built._content = body or b""
    built.headers.update(headers or {})
    built.encoding = "utf-8"
    return built


# -- raise_for_status --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 302])
def test_success_does_not_raise(status):
    raise_for_status(response(status, {"status": "SUCCESS"}), "Tata CLiQ POST ranging")


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth_errors(status):
    with pytest.raises(AuthError) as info:
        raise_for_status(response(status, {"code": "UNAUTHORIZED", "message": "token expired"}), "the call")
    assert info.value.status == status
    assert f"HTTP {status} from the call" in str(info.value)
    assert "token expired" in str(info.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_429_and_5xx_are_transient(status):
    with pytest.raises(TransientError) as info:
        raise_for_status(response(status, b""), "the call")
    assert info.value.status == status
    assert info.value.retry_after is None


@pytest.mark.parametrize(("header", "seconds"), [("30", 30.0), ("1.5", 1.5), ("-4", 0.0)])
def test_retry_after_header_is_read_in_seconds(header, seconds):
    with pytest.raises(TransientError) as info:
        raise_for_status(response(429, b"slow down", {"Retry-After": header}), "the call")
    assert info.value.retry_after == seconds


def test_unreadable_retry_after_is_ignored():
    with pytest.raises(TransientError) as info:
        raise_for_status(response(503, b"", {"Retry-After": "soon"}), "the call")
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_are_permanent_with_the_marketplace_code_and_message(status):
    body = {"code": "EAN_MISMATCH", "message": "EAN E1 belongs to another SKU"}
    with pytest.raises(PermanentError) as info:
        raise_for_status(response(status, body), "Tata CLiQ POST ranging")
    error = info.value
    assert error.status == status
    assert error.code == "EAN_MISMATCH"
    assert "EAN_MISMATCH" in str(error) and "EAN E1 belongs to another SKU" in str(error)
    assert str(error).startswith(f"HTTP {status} from Tata CLiQ POST ranging")


def test_permanent_error_from_a_non_json_body_carries_its_text():
    with pytest.raises(PermanentError) as info:
        raise_for_status(response(400, "<html>Bad Request: sku missing</html>"), "the call")
    assert info.value.code is None
    assert "Bad Request: sku missing" in str(info.value)


def test_long_error_bodies_are_cut_short():
    with pytest.raises(PermanentError) as info:
        raise_for_status(response(400, "x" * 10_000), "the call")
    assert len(str(info.value)) < 400


def test_errors_are_marketplace_errors():
    for error in (AuthError, TransientError, PermanentError):
        assert issubclass(error, MarketplaceError)


# -- send: timeouts and network failures -------------------------------------------------------


def test_send_without_timeout_is_refused_before_any_call():
    class Exploding(requests.Session):
        def request(self, *args, **kwargs):
            raise AssertionError("a call was made")

    with pytest.raises(TypeError, match="timeout"):
        send(Exploding(), "GET", "http://127.0.0.1:9/", "the call")


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(1)
    for conn in held:
        conn.close()
    listener.close()


def test_refused_connection_is_transient(closed_port):
    with pytest.raises(TransientError) as info:
        send(new_session(), "POST", f"http://127.0.0.1:{closed_port}/x", "the call", json=[], timeout=(1, 1))
    assert "could not connect for the call" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_read_timeout_is_transient(silent_port):
    with pytest.raises(TransientError) as info:
        send(new_session(), "POST", f"http://127.0.0.1:{silent_port}/x", "the call", json=[], timeout=(1, 0.2))
    assert "timed out calling the call" in str(info.value)


# -- Tata CLiQ mapping and the adapter registry ------------------------------------------------


def test_tatacliq_plans_one_call_per_operation_with_the_documented_bodies():
    updates = [ListingUpdate("S1", "E1", ranged=True, quantity=4), ListingUpdate("S2", "E2", ranged=False, quantity=0),
               ListingUpdate("S3", "E3", price=Price(Decimal("10.00"), Decimal("9.50")))]
    calls = {call.kind: call for call in tatacliq_mapping.plan(updates)}
    assert tatacliq_mapping.body(calls["ranging"]) == [{"ean": "E1", "sku": "S1"}]
    assert tatacliq_mapping.body(calls["deranging"]) == [{"ean": "E2", "sku": "S2"}]
    assert tatacliq_mapping.body(calls["inventory"]) == [{"sku": "S1", "ean": "E1", "quantity": 4}, {"sku": "S2", "ean": "E2", "quantity": 0}]
    assert tatacliq_mapping.body(calls["pricing"]) == [{"sku": "S3", "ean": "E3", "mrp": "10.00", "sellingPrice": "9.50"}]
    # Unlisting goes before the stock, listing after it: a SKU never shows stock while unlisted.
    assert [c.kind for c in tatacliq_mapping.plan(updates)] == ["deranging", "pricing", "inventory", "ranging"]


def test_tatacliq_money_goes_out_as_plain_decimal_strings():
    prices = [Price(Decimal("1E+3"), Decimal("999.5")), Price(Decimal("0.10"), Decimal("0.1")),
              Price(Decimal("9999999999.99"), Decimal("12"))]
    updates = [ListingUpdate(f"S{n}", f"E{n}", price=price) for n, price in enumerate(prices)]
    (call,) = tatacliq_mapping.plan(updates)
    assert [(b["mrp"], b["sellingPrice"]) for b in tatacliq_mapping.body(call)] == [
        ("1000.00", "999.50"), ("0.10", "0.10"), ("9999999999.99", "12.00")]


@pytest.mark.parametrize("answer, verdicts", [
    ({"status": "PARTIAL", "items": [{"sku": "S1", "status": "SUCCESS"},
                                     {"sku": "S2", "status": "FAILURE", "reason": "unknown EAN"}]},
     [("S1", True, None, None), ("S2", False, "REJECTED", "unknown EAN"),
      ("S3", False, "NO_VERDICT", "Tata CLiQ's answer did not mention this SKU")]),
    ({"items": [{"sku": "S1", "status": "FAILURE"}, {"sku": "S2"}, {"sku": "S3", "status": "QUEUED"}]},
     [("S1", False, "REJECTED", "Tata CLiQ refused this SKU without saying why"),
      ("S2", False, "NO_VERDICT", "Tata CLiQ's answer gave no status for this SKU"),
      ("S3", False, "UNKNOWN_STATUS", "Tata CLiQ answered status 'QUEUED' for this SKU")]),
    ({"status": "SUCCESS"}, [(s, False, "NO_VERDICT", "Tata CLiQ's answer did not mention this SKU") for s in ("S1", "S2", "S3")]),
    ([{"sku": "S1", "status": "SUCCESS"}], [(s, False, "NO_VERDICT", "Tata CLiQ's answer did not mention this SKU")
                                            for s in ("S1", "S2", "S3")]),
], ids=["missing", "odd-items", "no-items", "not-an-object"])
def test_tatacliq_settles_a_sku_as_done_only_on_its_own_success(answer, verdicts):
    (call,) = tatacliq_mapping.plan([ListingUpdate(f"S{n}", f"E{n}", quantity=n) for n in (1, 2, 3)])
    results = tatacliq_mapping.results(call, answer)
    assert [(r.sku, r.ok, r.code, r.message) for r in results] == verdicts
    assert {r.field for r in results} == {"quantity"}


def test_unknown_marketplace_lists_the_known_names(tmp_path):
    channel = ChannelConfig(id="UZ", marketplace="amazon-in", base_url="http://x", credentials_ref="amazon-uz")
    with pytest.raises(UnknownMarketplace) as info:
        adapter_for(channel, HttpConfig(), SecretStore({}, tmp_path))
    assert "amazon-in" in str(info.value) and "tatacliq" in str(info.value)


def test_adapter_for_tatacliq_reads_its_secret(tmp_path):
    channel = ChannelConfig(id="UA", marketplace="tatacliq", base_url="http://x", credentials_ref="tatacliq-ua")
    adapter = adapter_for(channel, HttpConfig(), SecretStore({"WHEEL_SECRET_TATACLIQ_UA": TOKEN}, tmp_path))
    assert isinstance(adapter, TataCliqAdapter)


def test_missing_secret_is_an_auth_error_naming_the_variable_without_secrets(tmp_path):
    channel = ChannelConfig(id="UA", marketplace="tatacliq", base_url="http://x", credentials_ref="tatacliq-ua")
    secrets = SecretStore({"WHEEL_SECRET_TATACLIQ_UB": TOKEN}, tmp_path)
    with pytest.raises(AuthError) as info:
        make_adapter(channel, HttpConfig(), secrets)
    assert "WHEEL_SECRET_TATACLIQ_UA" in str(info.value)
    assert TOKEN not in str(info.value)


def test_empty_secret_file_is_an_auth_error(tmp_path):
    (tmp_path / "tatacliq-ua").write_text("  \n")
    channel = ChannelConfig(id="UA", marketplace="tatacliq", base_url="http://x", credentials_ref="tatacliq-ua")
    with pytest.raises(AuthError, match="empty"):
        make_adapter(channel, HttpConfig(), SecretStore({}, tmp_path))


# -- the token never reaches an error ----------------------------------------------------------


class Marketplace(BaseHTTPRequestHandler):
    """Answers every POST with the server's `status` and `body`, and remembers the headers."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append(dict(self.headers))
        body = self.server.body
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/html" if isinstance(body, bytes) else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def marketplace() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Marketplace)
    server.status, server.body, server.seen = 200, {"status": "SUCCESS", "items": [{"sku": "S1", "status": "SUCCESS"}]}, []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def tatacliq(server: ThreadingHTTPServer) -> TataCliqAdapter:
    channel = ChannelConfig(
        id="UA", marketplace="tatacliq", base_url=f"http://127.0.0.1:{server.server_port}/tatacliq",
        credentials_ref="tatacliq-ua",
    )
    return TataCliqAdapter(channel, HttpConfig(connect_timeout_s=1, read_timeout_s=2), TOKEN)


class NoQuota:
    def acquire(self, operation):
        pass


def range_one(adapter):
    [call], _ = adapter.plan([ListingUpdate("S1", "E1", ranged=True)])
    return adapter.execute(call, NoQuota(), request_id="req-1")


def error_text(error: BaseException) -> str:
    return " ".join([str(error), repr(error), repr(error.args), repr(vars(error))])


def test_adapter_sends_the_token_and_returns_the_status(marketplace):
    results = range_one(tatacliq(marketplace))
    assert results == [ItemResult("S1", "ranged", True)]
    assert marketplace.seen[0]["Authorization"] == f"Bearer {TOKEN}"
    assert marketplace.seen[0]["X-Request-Id"] == "req-1"


@pytest.mark.parametrize(("status", "error_type"), [(401, AuthError), (403, AuthError), (500, TransientError)])
def test_adapter_errors_never_carry_the_token(marketplace, status, error_type):
    marketplace.status, marketplace.body = status, {"code": "REFUSED", "message": "invalid or expired bearer token"}
    with pytest.raises(error_type) as info:
        range_one(tatacliq(marketplace))
    assert marketplace.seen[0]["Authorization"] == f"Bearer {TOKEN}"  # it was sent...
    assert TOKEN not in error_text(info.value)  # ...and it is not in the error
    assert info.value.__context__ is None or TOKEN not in error_text(info.value.__context__)


def test_a_page_that_is_not_json_never_carries_the_token_either(marketplace):
    marketplace.body = f"<html><body>Bad gateway for Bearer {TOKEN}</body></html>".encode()
    with pytest.raises(TransientError) as info:
        range_one(tatacliq(marketplace))
    assert "Bad gateway for Bearer ***" in str(info.value) and "not JSON" in str(info.value)
    assert TOKEN not in error_text(info.value)


def test_adapter_errors_never_carry_the_token_even_when_the_server_echoes_it(marketplace):
    marketplace.status, marketplace.body = 401, {"code": "REFUSED", "message": f"token {TOKEN} has expired"}
    with pytest.raises(AuthError) as info:
        range_one(tatacliq(marketplace))
    assert TOKEN not in str(info.value)


def test_adapter_network_errors_never_carry_the_token(closed_port, tmp_path):
    channel = ChannelConfig(
        id="UA", marketplace="tatacliq", base_url=f"http://127.0.0.1:{closed_port}", credentials_ref="r",
    )
    adapter = TataCliqAdapter(channel, HttpConfig(connect_timeout_s=1, read_timeout_s=1), TOKEN)
    with pytest.raises(TransientError) as info:
        range_one(adapter)
    assert TOKEN not in error_text(info.value)



@pytest.mark.parametrize("value", ["inf", "1e12", "99999999"])
def test_an_absurd_retry_after_is_bounded(value):
    response = requests.Response()
    response.status_code, response._content, response.headers["Retry-After"] = 429, b"", value
    with pytest.raises(TransientError) as info:
        raise_for_status(response, "x")
    assert info.value.retry_after == 3600.0


def test_retry_after_as_an_http_date():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    response = requests.Response()
    response.status_code, response._content = 503, b""
    response.headers["Retry-After"] = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    with pytest.raises(TransientError) as info:
        raise_for_status(response, "x")
    assert 100 < info.value.retry_after <= 120


# -- every requests failure lands in the taxonomy ----------------------------------------------


def serve_raw(answer: bytes, *, times: int = 50) -> tuple[int, threading.Thread]:
    """A server that answers each connection with `answer` as raw bytes, then hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(5)

    def serve() -> None:
        with listener:
            for _ in range(times):
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.settimeout(2)
                    try:
                        conn.recv(65536)
                        conn.sendall(answer.replace(b"{port}", str(listener.getsockname()[1]).encode()))
                    except OSError:
                        pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


NETWORK_FAILURES = {
    # The connection drops in the middle of a chunked body (requests: ChunkedEncodingError).
    "a chunked body cut short": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly-half",
    # A body that says gzip and is not (requests: ContentDecodingError).
    "a body that cannot be decoded": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot-gzip!",
    # A redirect to itself, for ever (requests: TooManyRedirects).
    "a redirect loop": b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/again\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("case", NETWORK_FAILURES)
def test_a_broken_answer_is_transient(case):
    port, thread = serve_raw(NETWORK_FAILURES[case])
    with pytest.raises(TransientError) as info:
        send(new_session(), "GET", f"http://127.0.0.1:{port}/x", "the call", timeout=(1, 2))
    assert str(info.value).startswith("the call failed") and info.value.status is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize("url", ["127.0.0.1:8900/tatacliq?token=" + TOKEN, "tatacliq.example/api", "ftp://127.0.0.1/tatacliq", "http://",
                                 "http://[::1/tatacliq"])
def test_a_base_url_that_is_no_url_is_a_configuration_error_that_says_so(url):
    with pytest.raises(ConfigurationError) as info:
        send(new_session(), "GET", url, "the call", timeout=(1, 1), secrets=(TOKEN,))
    assert isinstance(info.value, PermanentError)  # retrying cannot help
    assert "base URL" in str(info.value) and "wheelctl channels set" in str(info.value)
    assert TOKEN not in error_text(info.value)
