"""HTTP plumbing shared by the marketplace clients: sessions, and status codes to errors."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

from wheel.marketplaces.errors import AuthError, ConfigurationError, PermanentError, TransientError


def new_session(user_agent: str = "wheel-middleware/0.1") -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    return session


# A Retry-After longer than this is taken as this: a task must not wait past Redis's visibility.
MAX_RETRY_AFTER_S = 3600.0


def retry_after_seconds(response: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), bounded; None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    if not math.isfinite(seconds):
        return MAX_RETRY_AFTER_S if seconds > 0 else None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def raise_for_status(response: requests.Response, what: str, *, secrets: tuple[str, ...] = ()) -> None:
    """Map a failed response to the error taxonomy; `what` names the call for the event log.

    The marketplace's own error text goes into the message, with any of `secrets` masked (a
    marketplace may echo the token it refused).
    """
    status = response.status_code
    if status < 400:
        return
    code, text = _error_detail(response)
    detail = f"{code}: {text}" if code else text
    for secret in secrets:
        if secret:
            detail = detail.replace(secret, "***")
    message = f"HTTP {status} from {what}" + (f" ({detail})" if detail else "")
    if status in (401, 403):
        raise AuthError(message, status=status)
    if status == 429 or status >= 500:
        raise TransientError(message, status=status, retry_after=retry_after_seconds(response))
    raise PermanentError(message, status=status, code=code)


def _error_detail(response: requests.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:300].strip()
    if isinstance(body, dict):
        code = body.get("code") or body.get("errorCode")
        text = body.get("message") or body.get("error") or ""
        return (str(code) if code else None), str(text)[:300]
    return None, str(body)[:300]


def send(
    session: requests.Session, method: str, url: str, what: str, *, secrets: tuple[str, ...] = (), **kwargs
) -> requests.Response:
    """One HTTP call with the caller's timeout. Every failure of requests lands in the taxonomy:
    a URL that is no URL is a ConfigurationError, a request that cannot be built a PermanentError,
    and everything else (network, a body cut short or undecodable, a redirect loop) a TransientError.
    No message carries the URL's query, a header or a body: they may hold credentials."""
    if "timeout" not in kwargs:
        raise TypeError("every marketplace call needs an explicit timeout")
    try:
        response = session.request(method, url, **kwargs)
    except requests.Timeout:
        raise TransientError(f"timed out calling {what}") from None
    except requests.ConnectionError as exc:
        raise TransientError(f"could not connect for {what}: {type(exc).__name__}") from None
    except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL,
            requests.exceptions.URLRequired) as exc:
        raise ConfigurationError(
            f"{what} cannot be made: {_shown_url(url, secrets)} is not an http(s) URL ({type(exc).__name__}); "
            "check the channel's base URL and options (`wheelctl channels set`)"
        ) from None
    except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidJSONError) as exc:
        raise PermanentError(f"{what} cannot be made: the request is malformed ({type(exc).__name__})") from None
    except requests.RequestException as exc:
        # ChunkedEncodingError, ContentDecodingError, TooManyRedirects, RetryError, ...: the
        # answer broke on the way; another attempt may well get through.
        raise TransientError(f"{what} failed: {type(exc).__name__} (the answer broke off or could not be read)") from None
    raise_for_status(response, what, secrets=secrets)
    return response


def _shown_url(url: str, secrets: tuple[str, ...]) -> str:
    """The URL for a message: no user info, query or fragment, secrets masked, cut short."""
    try:
        parts = urlsplit(str(url))
        shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if parts.scheme else parts.path
    except ValueError:
        shown = str(url).split("?", 1)[0].split("@")[-1]
    for secret in secrets:
        if secret:
            shown = shown.replace(secret, "***")
    return repr(shown[:120])
