"""Marketplace adapters, one subpackage per marketplace, registered by marketplace name: the one
list of marketplaces Wheel knows (the channels table's check, the workers' queues, the CLI's
choices and the demo all take it from here).

An adapter's subpackage is imported when a channel of its marketplace first needs one
(`adapter_for`), not with this package: the bridge, beat, Flower and the oms and publisher workers
read the list of marketplaces but push nothing, and need neither the adapters nor requests in their
memory."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from wheel.marketplaces.base import ChannelConfig, HttpConfig, MarketplaceAdapter
from wheel.marketplaces.lookups import LookupCache
from wheel.secrets import SecretStore

# factory(channel, http, secrets, lookups): `lookups` keeps what the adapter looks up (None: in
# memory, for its own process).
AdapterFactory = Callable[[ChannelConfig, HttpConfig, SecretStore, LookupCache | None], MarketplaceAdapter]

AMAZON, FLIPKART, TATACLIQ = "amazon", "flipkart", "tatacliq"

# Each marketplace's subpackage, whose `make_adapter` is its AdapterFactory.
ADAPTER_MODULES: dict[str, str] = {
    AMAZON: "wheel.marketplaces.amazon",
    FLIPKART: "wheel.marketplaces.flipkart",
    TATACLIQ: "wheel.marketplaces.tatacliq",
}

# The marketplaces Wheel knows, in one place: queues, channel checks and the CLI all read this.
MARKETPLACES: tuple[str, ...] = tuple(ADAPTER_MODULES)


class UnknownMarketplace(LookupError):
    pass


def adapter_for(channel: ChannelConfig, http: HttpConfig, secrets: SecretStore,
                lookups: LookupCache | None = None) -> MarketplaceAdapter:
    try:
        module = ADAPTER_MODULES[channel.marketplace]
    except KeyError:
        raise UnknownMarketplace(
            f"no adapter for marketplace {channel.marketplace!r} (channel {channel.id}); "
            f"adapters exist for: {', '.join(sorted(ADAPTER_MODULES))}"
        ) from None
    factory: AdapterFactory = importlib.import_module(module).make_adapter
    return factory(channel, http, secrets, lookups)
