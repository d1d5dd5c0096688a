"""What every marketplace adapter offers, and the data it is built from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from wheel.domain import RangingItem


@dataclass(frozen=True)
class ChannelConfig:
    id: str
    marketplace: str
    base_url: str
    credentials_ref: str


@dataclass(frozen=True)
class HttpConfig:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)


@dataclass(frozen=True)
class PushResult:
    """What the marketplace said about a push that it accepted."""

    summary: dict[str, Any]


class MarketplaceAdapter(Protocol):
    marketplace: str

    def range_items(self, items: Sequence[RangingItem], *, request_id: str) -> PushResult:
        """List the items and make them buyable; raise a MarketplaceError on failure."""
        ...
