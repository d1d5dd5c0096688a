"""Test doubles at the quota port."""

from __future__ import annotations

from wheel.marketplaces.base import QuotaWait


class RecordingGate:
    """A quota gate that never waits and remembers every operation it was asked for (the real
    gate, Redis's token bucket, is tested on its own)."""

    def __init__(self) -> None:
        self.acquired: list[str] = []
        self.throttles: list[str] = []

    def acquire(self, operation: str) -> None:
        self.acquired.append(operation)

    def throttled(self, retry_after: float | None = None) -> QuotaWait:
        operation = self.acquired[-1] if self.acquired else "unknown"
        self.throttles.append(operation)
        return QuotaWait(operation, max(0.05, retry_after or 0.0))
