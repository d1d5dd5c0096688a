"""Marketplace adapters, one subpackage per marketplace, registered by marketplace name: the one
list of marketplaces Wheel knows (the channels table's check, the workers' queues, the CLI's
choices and the demo all take it from here)."""

from __future__ import annotations

from collections.abc import Callable

from wheel.marketplaces import amazon, flipkart, tatacliq
from wheel.marketplaces.base import ChannelConfig, HttpConfig, MarketplaceAdapter
from wheel.marketplaces.lookups import LookupCache
from wheel.secrets import SecretStore

# factory(channel, http, secrets, lookups): `lookups` keeps what the adapter looks up (None: in
# memory, for its own process).
AdapterFactory = Callable[[ChannelConfig, HttpConfig, SecretStore, LookupCache | None], MarketplaceAdapter]

AMAZON, FLIPKART, TATACLIQ = "amazon", "flipkart", "tatacliq"

ADAPTERS: dict[str, AdapterFactory] = {
    AMAZON: amazon.make_adapter,
    FLIPKART: flipkart.make_adapter,
    TATACLIQ: tatacliq.make_adapter,
}
MARKETPLACES: tuple[str, ...] = tuple(ADAPTERS)

# The marketplaces Wheel knows, in one place: queues, channel checks and the CLI all read this.
MARKETPLACES: tuple[str, ...] = tuple(ADAPTERS)


class UnknownMarketplace(LookupError):
    pass


def adapter_for(channel: ChannelConfig, http: HttpConfig, secrets: SecretStore,
                lookups: LookupCache | None = None) -> MarketplaceAdapter:
    try:
        factory = ADAPTERS[channel.marketplace]
    except KeyError:
        raise UnknownMarketplace(
            f"no adapter for marketplace {channel.marketplace!r} (channel {channel.id}); "
            f"adapters exist for: {', '.join(sorted(ADAPTERS))}"
        ) from None
    return factory(channel, http, secrets, lookups)
