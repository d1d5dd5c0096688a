"""The Tata CLiQ adapter: one authenticated session per channel, a JSON POST per operation."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from wheel.domain import ItemResult, ListingUpdate, MarketplaceListing
from wheel.marketplaces import http
from wheel.marketplaces.base import Call, Capabilities, ChannelConfig, HttpConfig, QuotaGate
from wheel.marketplaces.errors import AuthError
from wheel.marketplaces.tatacliq import mapping, paths
from wheel.secrets import SecretNotFound, SecretStore

PATHS = {"ranging": paths.RANGING, "deranging": paths.DERANGING, "inventory": paths.INVENTORY, "pricing": paths.PRICING}


class TataCliqAdapter:
    marketplace = "tatacliq"
    # No quotas are published; a channel may set its own.
    capabilities = Capabilities(max_batch={k: mapping.MAX_BATCH for k in PATHS}, quotas={})

    def __init__(self, channel: ChannelConfig, http_config: HttpConfig, token: str):
        self.channel = channel
        self._timeout = http_config.timeout
        self._session = http.new_session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._secrets = (token,)

    def plan(self, updates: Sequence[ListingUpdate]) -> tuple[list[Call], list[ItemResult]]:
        return mapping.plan(updates), []

    def execute(self, call: Call, quota: QuotaGate, *, request_id: str) -> list[ItemResult]:
        path = PATHS[call.kind]
        quota.acquire(call.operation)
        response = http.send(
            self._session,
            "POST",
            self.channel.base_url.rstrip("/") + path.format(channel_id=quote(self.channel.id, safe="")),
            f"Tata CLiQ POST {path.format(channel_id=self.channel.id)}",
            json=mapping.body(call),
            headers={"X-Request-Id": request_id},
            timeout=self._timeout,
            secrets=self._secrets,
        )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        return mapping.results(call, answer)

    def read_listings(self, skus: Sequence[str], quota: QuotaGate) -> dict[str, MarketplaceListing]:
        raise NotImplementedError("Tata CLiQ publishes no way to read listings back")


def make_adapter(channel: ChannelConfig, http_config: HttpConfig, secrets: SecretStore) -> TataCliqAdapter:
    try:
        token = secrets.get(channel.credentials_ref)
    except SecretNotFound as exc:
        raise AuthError(str(exc)) from None
    return TataCliqAdapter(channel, http_config, token)
