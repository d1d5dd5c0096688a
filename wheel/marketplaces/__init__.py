"""Marketplace adapters, one subpackage per marketplace, registered by marketplace name."""

from __future__ import annotations

from collections.abc import Callable

from wheel.marketplaces.amazon import make_adapter as _amazon
from wheel.marketplaces.base import ChannelConfig, HttpConfig, MarketplaceAdapter
from wheel.marketplaces.flipkart import make_adapter as _flipkart
from wheel.marketplaces.tatacliq import make_adapter as _tatacliq
from wheel.secrets import SecretStore

AdapterFactory = Callable[[ChannelConfig, HttpConfig, SecretStore], MarketplaceAdapter]

ADAPTERS: dict[str, AdapterFactory] = {
    "amazon": _amazon,
    "flipkart": _flipkart,
    "tatacliq": _tatacliq,
}

# The marketplaces Wheel knows, in one place: queues, channel checks and the CLI all read this.
MARKETPLACES: tuple[str, ...] = tuple(ADAPTERS)


class UnknownMarketplace(LookupError):
    pass


def adapter_for(channel: ChannelConfig, http: HttpConfig, secrets: SecretStore) -> MarketplaceAdapter:
    try:
        factory = ADAPTERS[channel.marketplace]
    except KeyError:
        raise UnknownMarketplace(
            f"no adapter for marketplace {channel.marketplace!r} (channel {channel.id}); "
            f"adapters exist for: {', '.join(sorted(ADAPTERS))}"
        ) from None
    return factory(channel, http, secrets)
