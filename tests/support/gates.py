"""Test doubles at the quota port."""

from __future__ import annotations


class RecordingGate:
    """A quota gate that never waits and remembers every operation it was asked for (the real
    gate, Redis's token bucket, is tested on its own)."""

    def __init__(self) -> None:
        self.acquired: list[str] = []

    def acquire(self, operation: str) -> None:
        self.acquired.append(operation)
