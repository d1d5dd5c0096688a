"""HTTP to Amazon: the Login with Amazon token exchange and cache, SP-API calls, and their errors.

Every SP-API request takes one request from the channel's quota first and carries the LWA access
token in `x-amz-access-token`. A 401/403 refreshes the token once and retries once (an access
token can be revoked or expire early); the second refusal is an AuthError. Pre-signed feed URLs
(upload and download) carry no token and take no quota. Secrets never reach an error message.
"""

from __future__ import annotations

import gzip
import json
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

from wheel.marketplaces import http
from wheel.marketplaces.base import HttpConfig, QuotaGate
from wheel.marketplaces.errors import AuthError, MarketplaceError, PermanentError, TransientError

# SP-API requires a user-agent naming the application, language and platform (at most 500 chars).
USER_AGENT = f"wheel-middleware/0.1 (Language=Python/{platform.python_version()}; Platform={platform.system()})"
# Refresh the access token this long before Amazon says it expires.
TOKEN_MARGIN_S = 60.0


@dataclass(frozen=True)
class LwaCredentials:
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)


class SpApiClient:
    def __init__(self, base_url: str, lwa_url: str, credentials: LwaCredentials, http_config: HttpConfig,
                 *, clock: Callable[[], float] = time.monotonic):
        self._base_url = base_url.rstrip("/")
        self._lwa_url = lwa_url
        self._credentials = credentials
        self._timeout = http_config.timeout
        self._clock = clock
        self._session = http.new_session(USER_AGENT)
        # Pre-signed URLs get a session of their own: no SP-API header may leak to them.
        self._plain = http.new_session(USER_AGENT)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0

    @property
    def _secrets(self) -> tuple[str, ...]:
        return (self._credentials.client_secret, self._credentials.refresh_token, self._token or "")

    # -- Login with Amazon --------------------------------------------------------------------

    def access_token(self, *, refresh: bool = False) -> str:
        """The cached access token, exchanged anew when it is about to expire or `refresh` is asked."""
        with self._lock:
            if refresh or self._token is None or self._clock() >= self._token_expires:
                self._token, lifetime = self._exchange()
                self._token_expires = self._clock() + max(0.0, lifetime - TOKEN_MARGIN_S)
            return self._token

    def _exchange(self) -> tuple[str, float]:
        form = {"grant_type": "refresh_token", "refresh_token": self._credentials.refresh_token,
                "client_id": self._credentials.client_id, "client_secret": self._credentials.client_secret}
        try:
            response = http.send(self._session, "POST", self._lwa_url, "Login with Amazon token exchange",
                                 data=form, timeout=self._timeout, secrets=self._secrets)
        except PermanentError as exc:
            # LWA answers 400 invalid_grant / 401 invalid_client to bad credentials.
            raise AuthError(f"Login with Amazon refused the channel's credentials: {exc}", status=exc.status) from None
        try:
            answer = response.json()
            token, lifetime = answer["access_token"], float(answer.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise TransientError("Login with Amazon answered without an access token") from None
        if not isinstance(token, str) or not token:
            raise TransientError("Login with Amazon answered without an access token")
        return token, lifetime

    # -- SP-API -------------------------------------------------------------------------------

    def call(self, method: str, path: str, operation: str, quota: QuotaGate, *, params: dict | None = None,
             body: str | None = None, request_id: str | None = None) -> Any:
        """One SP-API operation; its JSON answer (floats as Decimal). `body` is JSON text."""
        what = f"Amazon {operation} ({method} {path})"
        for attempt in (1, 2):
            token = self.access_token(refresh=attempt == 2)
            headers = {"x-amz-access-token": token}
            if body is not None:
                headers["Content-Type"] = "application/json"
            if request_id:
                headers["X-Request-Id"] = request_id  # Amazon ignores it; the sandbox logs it
            quota.acquire(operation)
            try:
                response = http.send(
                    self._session, method, self._base_url + path, what, params=params,
                    data=body.encode("utf-8") if body is not None else None, headers=headers,
                    timeout=self._timeout, secrets=self._secrets,
                    # Raises our errors from SP-API's ErrorList before http.send's generic mapping,
                    # which does not read that shape.
                    hooks={"response": lambda r, *a, **k: _raise_for_spapi_error(r, what, self._secrets)},
                )
            except AuthError:
                if attempt == 2:
                    raise
                continue
            return _json(response, what)
        raise AssertionError("unreachable")

    # -- pre-signed feed document URLs --------------------------------------------------------

    def upload(self, url: str, content: bytes, content_type: str) -> None:
        _presigned(lambda: http.send(self._plain, "PUT", url, "Amazon feed document upload", data=content,
                                     headers={"Content-Type": content_type}, timeout=self._timeout))

    def download(self, url: str, compression: str | None) -> Any:
        """A result document (JSON), gunzipped when Amazon says it is compressed."""
        response = _presigned(lambda: http.send(self._plain, "GET", url, "Amazon feed report download",
                                                timeout=self._timeout))
        content = response.content
        if compression == "GZIP" and content[:2] == b"\x1f\x8b":  # unless the transport already inflated it
            content = gzip.decompress(content)
        try:
            return json.loads(content, parse_float=Decimal)
        except ValueError:
            raise TransientError("the Amazon feed processing report is not JSON") from None


def _presigned(send: Callable[[], requests.Response]) -> requests.Response:
    # A refused pre-signed URL (it expires after 5 minutes) is no credentials problem: the call
    # as a whole can be retried with a fresh document.
    try:
        return send()
    except AuthError as exc:
        raise TransientError(f"pre-signed URL refused: {exc}", status=exc.status) from None


def _json(response: requests.Response, what: str) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        raise TransientError(f"{what} answered HTTP {response.status_code} with a body that is not JSON") from None


def _raise_for_spapi_error(response: requests.Response, what: str, secrets: tuple[str, ...]) -> None:
    """Map an SP-API failure (`{"errors":[{"code","message","details"}]}`) to the error taxonomy."""
    status = response.status_code
    if status < 400:
        return
    try:
        errors = response.json().get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None
    except (ValueError, AttributeError):
        first = None
    if first is None:
        return  # not SP-API's shape: http.send maps it
    code = str(first.get("code") or "") or None
    text = ": ".join(str(first[k]) for k in ("message", "details") if first.get(k))
    detail = f"{code}: {text}" if code else text
    for secret in secrets:
        if secret:
            detail = detail.replace(secret, "***")
    amazon_id = response.headers.get("x-amzn-RequestId")
    message = f"HTTP {status} from {what} ({detail})" + (f" [x-amzn-RequestId {amazon_id}]" if amazon_id else "")
    if status in (401, 403):
        raise AuthError(message, status=status)
    if status == 429 or status >= 500:
        raise TransientError(message, status=status, retry_after=http.retry_after_seconds(response))
    raise PermanentError(message, status=status, code=code)


def with_context(exc: MarketplaceError, prefix: str) -> MarketplaceError:
    """The same error, its message prefixed (say, with the feed id that must not be lost)."""
    message = f"{prefix}: {exc}"
    if isinstance(exc, TransientError):
        return TransientError(message, status=exc.status, retry_after=exc.retry_after)
    if isinstance(exc, PermanentError):
        return PermanentError(message, status=exc.status, code=exc.code)
    if isinstance(exc, AuthError):
        return AuthError(message, status=exc.status)
    return MarketplaceError(message)
