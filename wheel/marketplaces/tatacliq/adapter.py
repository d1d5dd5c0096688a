"""The Tata CLiQ adapter: one authenticated session per channel, a JSON POST per operation, and
an XML GET per order pull (every open order, or every cancelled line, in one answer)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import requests

from wheel.domain import ItemResult, ListingUpdate, MarketplaceListing
from wheel.marketplaces import http
from wheel.marketplaces.base import (Call, Capabilities, ChannelConfig, HttpConfig, OrderPage, PullCapabilities,
                                     PullWindow, QuotaGate)
from wheel.marketplaces.errors import AuthError, PermanentError, TransientError
from wheel.marketplaces.tatacliq import mapping, orders, paths
from wheel.secrets import SecretNotFound, SecretStore

PATHS = {"ranging": paths.RANGING, "deranging": paths.DERANGING, "inventory": paths.INVENTORY, "pricing": paths.PRICING}
# Pull job -> (operation, the quota's key; path).
PULLS = {"orders": ("newOrders", paths.NEW_ORDERS), "cancellations": ("cancelledOrders", paths.CANCELLED_ORDERS)}


class TataCliqAdapter:
    marketplace = "tatacliq"
    # No quotas are published; a channel may set its own.
    capabilities = Capabilities(max_batch={k: mapping.MAX_BATCH for k in PATHS}, quotas={})
    # No filters and no paging: every pull answers everything open (or cancelled), so no window.
    pull_capabilities = PullCapabilities(jobs=("orders", "cancellations"), settle_lag_s=0, overlap_s=0,
                                         uses_window=False)

    def __init__(self, channel: ChannelConfig, http_config: HttpConfig, token: str):
        self.channel = channel
        self._timeout = http_config.timeout
        self._session = http.new_session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._secrets = (token,)

    def plan(self, updates: Sequence[ListingUpdate]) -> tuple[list[Call], list[ItemResult]]:
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

    def pull(self, job: str, window: PullWindow, cursor: dict[str, Any] | None,
             quota: QuotaGate) -> Iterator[OrderPage]:
        """One page: the one GET's answer, mapped. The window and cursor are unused (no filters, no
        paging); orders (or cancelled lines) seen before come again and the service skips them."""
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
        body = _read_bounded(response, orders.MAX_ANSWER_BYTES, what)
        yield orders.read_page(job, self.channel.id, body, what, secrets=self._secrets)

    def read_listings(self, skus: Sequence[str], quota: QuotaGate) -> dict[str, MarketplaceListing]:
        raise NotImplementedError("Tata CLiQ publishes no way to read listings back")


def _not_json(response: requests.Response, what: str, secrets: tuple[str, ...]) -> str:
    """Why an answer is unusable, with the start of it (secrets masked) for the operator."""
    excerpt = " ".join(response.text[:400].split())[:160]
    for secret in secrets:
        if secret:
            excerpt = excerpt.replace(secret, "***")
    kind = response.headers.get("Content-Type") or "no Content-Type"
    return (f"{what} answered HTTP {response.status_code} with {kind}, not JSON (a proxy's or maintenance "
            f"page?), so no SKU in it is counted as done: {excerpt!r}")


def _read_bounded(response: requests.Response, limit: int, what: str) -> bytes:
    """The (decompressed) body, refused past `limit` bytes without reading the rest."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=1 << 16):
            size += len(chunk)
            if size > limit:
                raise PermanentError(f"{what} answered more than {limit:,} bytes, over the limit; refused unread")
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise TransientError(f"reading the answer of {what} failed: {type(exc).__name__}") from None
    finally:
        response.close()
    return b"".join(chunks)


def make_adapter(channel: ChannelConfig, http_config: HttpConfig, secrets: SecretStore) -> TataCliqAdapter:
    try:
        token = secrets.get(channel.credentials_ref)
    except SecretNotFound as exc:
        raise AuthError(str(exc)) from None
    return TataCliqAdapter(channel, http_config, token)
