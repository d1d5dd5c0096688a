"""The Tata CLiQ adapter: one authenticated session per channel, a JSON POST per operation, and
an XML GET per order pull (every open order, or every cancelled line, in one answer)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import requests

from wheel.domain import (
    CANCELLATIONS,
    DERANGING,
    INVENTORY,
    ORDER_JOBS,
    ORDERS,
    PRICING,
    RANGING,
    ItemResult,
    ListingUpdate,
)
from wheel.marketplaces import http
from wheel.marketplaces.base import (
    Call,
    Capabilities,
    ChannelConfig,
    HttpConfig,
    OrderPage,
    PullCapabilities,
    PullWindow,
    QuotaGate,
)
from wheel.marketplaces.errors import AuthError, PermanentError, TransientError
from wheel.marketplaces.lookups import LookupCache
from wheel.marketplaces.tatacliq import mapping, orders, paths
from wheel.secrets import SecretNotFound, SecretStore

PATHS = {RANGING: paths.RANGING, DERANGING: paths.DERANGING, INVENTORY: paths.INVENTORY, PRICING: paths.PRICING}
# Pull job -> (operation, the quota's key; path).
PULLS = {ORDERS: ("newOrders", paths.NEW_ORDERS), CANCELLATIONS: ("cancelledOrders", paths.CANCELLED_ORDERS)}
# The most one order answer may be (channel option max_answer_mb): about 135,000 sandbox-sized
# orders. New orders are read as they arrive, so this bounds a pull's time and traffic, not its
# memory. An answer past half of it is said (a warning, once a day), before intake is at risk.
DEFAULT_MAX_ANSWER_MB = 100
MB = 1024 * 1024


class TataCliqAdapter:
    marketplace = "tatacliq"
    # No quotas are published; a channel may set its own.
    capabilities = Capabilities(max_batch={k: mapping.MAX_BATCH for k in PATHS}, quotas={})
    # No filters and no paging: every pull answers everything open (or cancelled), so no window.
    pull_capabilities = PullCapabilities(jobs=ORDER_JOBS, settle_lag_s=0, overlap_s=0,
                                         uses_window=False)

    def __init__(self, channel: ChannelConfig, http_config: HttpConfig, token: str,
                 max_answer_mb: float = DEFAULT_MAX_ANSWER_MB):
        self.channel = channel
        self._timeout = http_config.timeout
        self._session = http.new_session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._secrets = (token,)
        self._max_answer_mb = max_answer_mb
        self._max_answer = int(max_answer_mb * MB)

    def plan(self, updates: Sequence[ListingUpdate], bulk: bool = False) -> tuple[list[Call], list[ItemResult]]:
        # No bulk path here (Capabilities.bulk_operation is None): `bulk` is never asked for.
        return mapping.plan(updates), []

    def execute(self, call: Call, quota: QuotaGate, *, request_id: str) -> list[ItemResult]:
        path = PATHS[call.kind]
        quota.acquire(call.operation)
        response = http.send(
            self._session,
            "POST",
            self.channel.base_url.rstrip("/") + path.format(channel_id=quote(self.channel.id, safe="")),
            f"Tata CLiQ POST {path.format(channel_id=self.channel.id)}",
            json=mapping.body(call),
            headers={"X-Request-Id": request_id},
            timeout=self._timeout,
            secrets=self._secrets,
        )
        try:
            answer = response.json()
        except ValueError:
            # A 200 that is not JSON did not come from the API: a proxy's or load balancer's
            # maintenance or error page, a captive portal. Transient, like the 5xx it stands in
            # for: retried with backoff, then failed loudly; no SKU is counted as done.
            raise TransientError(_not_json(response, f"Tata CLiQ POST {path.format(channel_id=self.channel.id)}",
                                           self._secrets), status=response.status_code) from None
        return mapping.results(call, answer)

    def check_credentials(self) -> str:
        """A GET of the cancelled lines with the bearer token, closed as soon as its status line and
        headers are in: Tata CLiQ has no token or "who am I" call (paths.py), and this is its one
        read that changes nothing. The body (possibly large) is never read."""
        path = paths.CANCELLED_ORDERS.format(channel_id=quote(self.channel.id, safe=""))
        response = http.send(self._session, "GET", self.channel.base_url.rstrip("/") + path,
                             f"Tata CLiQ GET {path}", headers={"Accept": "application/xml"},
                             timeout=self._timeout, secrets=self._secrets, stream=True)
        response.close()
        return f"Tata CLiQ took the bearer token (GET {path}: HTTP {response.status_code})"

    def pull(self, job: str, window: PullWindow, cursor: dict[str, Any] | None,
             quota: QuotaGate) -> Iterator[OrderPage]:
        """The one GET's answer, mapped: new orders a page at a time as they arrive, cancelled lines
        in one page. The window and cursor are unused (no filters, no paging); orders (or cancelled
        lines) seen before come again and the service skips them."""
        if job not in PULLS:
            raise ValueError(f"Tata CLiQ has no {job!r} pull")
        operation, path = PULLS[job]
        what = f"Tata CLiQ GET {path.format(channel_id=self.channel.id)}"
        quota.acquire(operation)
        response = http.send(
            self._session,
            "GET",
            self.channel.base_url.rstrip("/") + path.format(channel_id=quote(self.channel.id, safe="")),
            what,
            headers={"Accept": "application/xml"},
            timeout=self._timeout,
            secrets=self._secrets,
            stream=True,
        )
        if job == ORDERS:
            yield from self._new_orders(response, what)
            return
        body = _read_bounded(response, self._max_answer, what, lambda: self._over_limit(what, None))
        yield orders.read_page(job, self.channel.id, body, what, secrets=self._secrets, max_bytes=self._max_answer)

    def _new_orders(self, response: requests.Response, what: str) -> Iterator[OrderPage]:
        """Every open order, a page at a time as the answer arrives. Past the channel's limit the
        orders read so far are handed on and the pull fails, saying what to do: the orders before
        the limit still reach the OMS, and nothing after it is lost for good (it comes with a
        later pull, once the book is smaller or the limit higher)."""
        reader = orders.NewOrdersReader(self.channel.id, what, secrets=self._secrets)
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=1 << 16):
                room = self._max_answer - size
                size += len(chunk)
                if size > self._max_answer:
                    yield from reader.feed(chunk[:room])
                    yield from reader.flush()
                    raise self._over_limit(what, reader.read)
                yield from reader.feed(chunk)
            pages = reader.close()
        except requests.RequestException as exc:
            raise TransientError(f"reading the answer of {what} failed: {type(exc).__name__}") from None
        finally:
            response.close()
        if size > self._max_answer // 2:
            pages[-1].warnings["large-answer"] = (
                f"{what} answered {size:,} bytes, {100 * size // self._max_answer}% of the {self._max_answer:,}-byte "
                f"limit (option max_answer_mb={self._max_answer_mb:g}); all {reader.read:,} open orders in it were "
                f"read. Every pull reads the whole open-order book, and past the limit it stops taking orders: ship "
                f"or cancel the backlog on Tata CLiQ, or raise the limit before then: wheelctl channels set "
                f"{self.channel.id} --option max_answer_mb={_more(self._max_answer_mb)}")
        yield from pages

    def _over_limit(self, what: str, read: int | None) -> PermanentError:
        """The loud failure of an answer past the channel's limit, with what to do about it."""
        if read is None:
            taken = "nothing in it was read, so nothing in it arrives until this is fixed"
            fix = "raise the limit"
        else:
            taken = (f"the first {read:,} orders in it were read and the rest was not, so no order past that "
                     f"point arrives until this is fixed")
            fix = "ship or cancel the open-order backlog on Tata CLiQ, or raise the limit"
        return PermanentError(
            f"{what} answered more than {self._max_answer:,} bytes, the channel's limit (option max_answer_mb="
            f"{self._max_answer_mb:g}): {taken}; {fix}: wheelctl channels set {self.channel.id} --option "
            f"max_answer_mb={_more(self._max_answer_mb)}", code="ANSWER_TOO_LARGE")


def _not_json(response: requests.Response, what: str, secrets: tuple[str, ...]) -> str:
    """Why an answer is unusable, with the start of it (secrets masked) for the operator."""
    excerpt = " ".join(response.text[:400].split())[:160]
    for secret in secrets:
        if secret:
            excerpt = excerpt.replace(secret, "***")
    kind = response.headers.get("Content-Type") or "no Content-Type"
    return (f"{what} answered HTTP {response.status_code} with {kind}, not JSON (a proxy's or maintenance "
            f"page?), so no SKU in it is counted as done: {excerpt!r}")


def _more(mb: float) -> str:
    """A limit worth suggesting above `mb`: twice it."""
    return f"{mb * 2:g}"


def _read_bounded(response: requests.Response, limit: int, what: str,
                  too_large: Callable[[], PermanentError]) -> bytes:
    """The (decompressed) body, refused with `too_large()` past `limit` bytes without reading the rest."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=1 << 16):
            size += len(chunk)
            if size > limit:
                raise too_large()
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise TransientError(f"reading the answer of {what} failed: {type(exc).__name__}") from None
    finally:
        response.close()
    return b"".join(chunks)


def make_adapter(channel: ChannelConfig, http_config: HttpConfig, secrets: SecretStore,
                 lookups: LookupCache | None = None) -> TataCliqAdapter:
    """The adapter for one Tata CLiQ channel; the secret is the bearer token (`lookups` unused: a
    Tata CLiQ push needs nothing looked up first). Option
    `max_answer_mb` (a number, or its text as `wheelctl channels set --option` stores it) bounds
    one order answer."""
    value = channel.options.get("max_answer_mb", DEFAULT_MAX_ANSWER_MB)
    try:
        max_answer_mb = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        max_answer_mb = math.nan
    if not math.isfinite(max_answer_mb) or max_answer_mb <= 0:
        raise PermanentError(f"Tata CLiQ channel {channel.id}: options.max_answer_mb must be a number of megabytes "
                             f"above 0, not {value!r}", code="CHANNEL_CONFIG")
    try:
        token = secrets.get(channel.credentials_ref)
    except SecretNotFound as exc:
        raise AuthError(str(exc)) from None
    return TataCliqAdapter(channel, http_config, token, max_answer_mb=max_answer_mb)
