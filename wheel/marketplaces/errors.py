"""The one error taxonomy every marketplace client maps its failures into."""

from __future__ import annotations


class MarketplaceError(Exception):
    """Base class. `str()` is safe for events and alerts: it never carries credentials."""


class TransientError(MarketplaceError):
    """Timeouts, connection failures, 429 and 5xx: worth retrying after a while."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PermanentError(MarketplaceError):
    """A business rejection or bad data: retrying the same request cannot help."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class ConfigurationError(PermanentError):
    """A channel setting Wheel cannot use (a base URL that is not a URL): no request was made, and
    none can be until the channel is fixed."""

    def __init__(self, message: str):
        super().__init__(message, code="configuration")


class AuthError(MarketplaceError):
    """Credentials missing or refused."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status
