"""Flipkart's HTTP side: the client-credentials token (cached, renewed on a 401), listing calls
and the Order Management shipment search and details.

Every listing or shipment request first takes one request from the channel's quota; the token
call takes none. Errors map into the shared taxonomy, with secrets masked out of every message.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests

from wheel.marketplaces import http
from wheel.marketplaces.base import HttpConfig, QuotaGate
from wheel.marketplaces.errors import AuthError, PermanentError
from wheel.marketplaces.flipkart import mapping, orders

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth-service/oauth/token"
LISTINGS_PATH = "/sellers/listings/v3/"
UPDATE_PATHS = {
    "updateInventory": "/sellers/listings/v3/update/inventory",
    "updatePrice": "/sellers/listings/v3/update/price",
}
# Renew this long before the token says it expires (halfway through, for short-lived ones).
RENEW_EARLY_S = 60.0
# Flipkart recommends 60 s for Order Management calls (10 s for listings).
ORDER_READ_TIMEOUT_S = 60.0


class FlipkartClient:
    def __init__(self, base_url: str, app_id: str, app_secret: str, http_config: HttpConfig):
        self._base = base_url.rstrip("/")
        self._auth = (app_id, app_secret)
        basic = base64.b64encode(f"{app_id}:{app_secret}".encode()).decode()
        self._known_secrets = (app_secret, basic)
        self._timeout = http_config.timeout
        self._order_timeout = (http_config.connect_timeout_s, max(http_config.read_timeout_s, ORDER_READ_TIMEOUT_S))
        self._next_url_logged = False
        self._session = http.new_session()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    # -- listing calls ------------------------------------------------------------------------

    def get_listings(self, skus: Sequence[str], quota: QuotaGate, request_id: str | None = None) -> Any:
        # SKUs are comma-separated in the path, each escaped so a ',' or '/' in one cannot split it.
        path = LISTINGS_PATH + ",".join(quote(sku, safe="") for sku in skus)
        return self._call("GET", path, f"Flipkart getListings ({len(skus)} SKUs)", "getListings", quota, request_id)

    def update(self, operation: str, body: dict[str, Any], quota: QuotaGate, request_id: str | None) -> Any:
        path = UPDATE_PATHS[operation]
        return self._call("POST", path, f"Flipkart POST {path}", operation, quota, request_id, body)

    # -- order management ---------------------------------------------------------------------

    def search_shipments(self, body: dict[str, Any], quota: QuotaGate) -> Any:
        """The first page of a shipment search (numbers parsed as Decimal)."""
        return self._call("POST", orders.SEARCH_PATH, "Flipkart shipment search", "searchShipments", quota, None,
                          body, decimals=True, timeout=self._order_timeout)

    def next_shipments(self, next_page_url: str, quota: QuotaGate) -> Any:
        """A further page of a search, from the nextPageUrl Flipkart gave."""
        path = orders.page_path(next_page_url, self._base)
        if not self._next_url_logged:
            # Where nextPageUrl is relative to is not documented: show the first one taken.
            log.info("Flipkart nextPageUrl %r taken as %s", next_page_url[:120], path[:120])
            self._next_url_logged = True
        return self._call("GET", path, "Flipkart shipment search (next page)", "searchShipments", quota, None,
                          decimals=True, timeout=self._order_timeout)

    def get_shipments(self, shipment_ids: Sequence[str], quota: QuotaGate) -> Any:
        """Shipment details, with the delivery and billing addresses (at most 25 ids a call)."""
        if not 0 < len(shipment_ids) <= orders.MAX_DETAILS:
            raise ValueError(f"ask for 1 to {orders.MAX_DETAILS} shipments a call, not {len(shipment_ids)}")
        path = orders.DETAILS_PATH + ",".join(quote(i, safe="") for i in shipment_ids)
        return self._call("GET", path, f"Flipkart shipment details ({len(shipment_ids)} shipments)", "getShipments",
                          quota, None, decimals=True, timeout=self._order_timeout)

    def _call(self, method: str, path: str, what: str, operation: str, quota: QuotaGate,
              request_id: str | None, body: Any = None, *, decimals: bool = False,
              timeout: tuple[float, float] | None = None) -> Any:
        """One request; on a 401 the token is renewed once and the request made once more."""
        token = self._current_token()
        for attempt in (1, 2):
            quota.acquire(operation)
            headers = {"Authorization": f"Bearer {token}"}
            if request_id:
                headers["X-Request-Id"] = request_id
            try:
                response = self._send(method, path, what, token, headers=headers, json=body,
                                      timeout=timeout or self._timeout)
            except AuthError as exc:
                if exc.status != 401:
                    raise
                if attempt == 2:
                    raise AuthError(f"{exc}; refused again with a freshly issued token", status=401) from None
                token = self._renewed_token(token)
                continue
            try:
                return response.json(parse_float=Decimal) if decimals else response.json()
            except ValueError:
                return None
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, what: str, token: str | None, **kwargs) -> requests.Response:
        secrets = (*self._known_secrets, token or "")
        kwargs.setdefault("timeout", self._timeout)
        return http.send(
            self._session, method, self._base + path, what, secrets=secrets,
            hooks={"response": lambda response, *args, **kw: _raise_listing_rejection(response, what, secrets)},
            **kwargs,
        )

    # -- the token ----------------------------------------------------------------------------

    def check_token(self) -> None:
        """Ask for a new token now (AuthError when the app id or secret is refused); it is kept."""
        with self._lock:
            self._fetch_token()

    def _current_token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._fetch_token()
            return self._token

    def _renewed_token(self, refused: str) -> str:
        with self._lock:
            # Another thread may have renewed it already.
            if self._token == refused or self._token is None:
                self._fetch_token()
            return self._token

    def _fetch_token(self) -> None:
        response = self._send(
            "GET", TOKEN_PATH, "Flipkart token", None, auth=self._auth,
            params={"grant_type": "client_credentials", "scope": "Seller_Api"},
        )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("Flipkart's token answer carried no access_token")
        try:
            expires_in = float(answer.get("expires_in") or 0)
        except (TypeError, ValueError):
            expires_in = 0.0
        self._token = token
        self._renew_at = time.monotonic() + max(0.0, expires_in - min(RENEW_EARLY_S, expires_in / 2))


def _raise_listing_rejection(response: requests.Response, what: str, secrets: tuple[str, ...]) -> None:
    """A 4xx business rejection carrying Flipkart's own `errors[].code/description`, which the
    shared mapping does not read; everything else is left to it."""
    status = response.status_code
    if not 400 <= status < 500 or status in (401, 403, 429):
        return
    try:
        detail = mapping.error_detail(response.json())
    except ValueError:
        return
    if detail is None:
        return
    code, text = detail
    message = f"HTTP {status} from {what} ({code + ': ' if code else ''}{text})"
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    raise PermanentError(message, status=status, code=code)
