"""The Flipkart adapter: listing status and stock through update/inventory, prices through
update/price, 10 SKUs a call, with the FSNs and location ids looked up once and kept."""

from __future__ import annotations

import json
from collections.abc import Sequence

from wheel.domain import ItemResult, ListingUpdate, MarketplaceListing
from wheel.marketplaces.base import Call, Capabilities, ChannelConfig, HttpConfig, Quota, QuotaGate
from wheel.marketplaces.errors import AuthError
from wheel.marketplaces.flipkart import mapping
from wheel.marketplaces.flipkart.client import FlipkartClient
from wheel.secrets import SecretNotFound, SecretStore

LISTING_OPERATIONS = ("updateInventory", "updatePrice", "getListings")


class FlipkartAdapter:
    marketplace = "flipkart"
    # Flipkart publishes no quotas: 5 requests a second (burst 5) per operation is an assumption
    # that keeps concurrency low, as its docs ask; a channel can override it.
    capabilities = Capabilities(
        max_batch={op: mapping.MAX_BATCH for op in LISTING_OPERATIONS},
        quotas={op: Quota(5, 5) for op in LISTING_OPERATIONS},
        reads_listings=True,
        ranging_needs_quantity=True,
    )

    def __init__(self, channel: ChannelConfig, client: FlipkartClient):
        self.channel = channel
        self._client = client
        self._location_id: str | None = (channel.options or {}).get("location_id") or None
        # SKU -> (FSN, the listing's location ids): they do not change, so one look-up serves.
        self._ids: dict[str, tuple[str, tuple[str, ...]]] = {}

    def plan(self, updates: Sequence[ListingUpdate]) -> tuple[list[Call], list[ItemResult]]:
        return mapping.plan(updates)

    def execute(self, call: Call, quota: QuotaGate, *, request_id: str) -> list[ItemResult]:
        operation = call.operation
        missing = self._look_up([u.sku for u in call.updates], quota, request_id)
        out: list[ItemResult] = []
        sending: list[ListingUpdate] = []
        product_ids: dict[str, str] = {}
        location_ids: dict[str, str] = {}
        for update in call.updates:
            if update.sku not in self._ids:
                out += mapping.failed(operation, [update], "SKU_NOT_LISTED",
                                      missing.get(update.sku, "Flipkart holds no listing for this SKU"))
                continue
            product_id, locations = self._ids[update.sku]
            if operation == "updateInventory":
                location_id, why_not = mapping.choose_location(locations, self._location_id)
                if location_id is None:
                    out += mapping.failed(operation, [update], "LOCATION_UNKNOWN", why_not)
                    self._ids.pop(update.sku, None)  # the seller may add the location before the retry
                    continue
                location_ids[update.sku] = location_id
            product_ids[update.sku] = product_id
            sending.append(update)
        if not sending:
            return out
        if operation == "updateInventory":
            body = mapping.inventory_body(sending, product_ids, location_ids)
        else:
            body = mapping.price_body(sending, product_ids)
        answer = self._client.update(operation, body, quota, request_id)
        results = mapping.results(operation, sending, answer)
        for result in results:
            if not result.ok:
                # A stale FSN or location is one cause of a refusal: look them up afresh next time.
                self._ids.pop(result.sku, None)
        return out + results

    def read_listings(self, skus: Sequence[str], quota: QuotaGate) -> dict[str, MarketplaceListing]:
        held: dict[str, MarketplaceListing] = {}
        unique = list(dict.fromkeys(skus))
        for start in range(0, len(unique), mapping.MAX_BATCH):
            chunk = unique[start:start + mapping.MAX_BATCH]
            available, _ = mapping.listings_answer(self._client.get_listings(chunk, quota))
            for sku in chunk:
                if sku in available:
                    self._remember(sku, available[sku])
                    held[sku] = mapping.marketplace_listing(sku, available[sku], self._location_id)
        return held

    def _look_up(self, skus: Sequence[str], quota: QuotaGate, request_id: str) -> dict[str, str]:
        """Fill the id cache for SKUs not in it; why Flipkart holds no listing, for those it lacks."""
        wanted = [sku for sku in dict.fromkeys(skus) if sku not in self._ids]
        missing: dict[str, str] = {}
        for start in range(0, len(wanted), mapping.MAX_BATCH):
            chunk = wanted[start:start + mapping.MAX_BATCH]
            available, why = mapping.listings_answer(self._client.get_listings(chunk, quota, request_id))
            for sku in chunk:
                if sku not in available or not self._remember(sku, available[sku]):
                    missing[sku] = why.get(sku, "Flipkart holds no listing for this SKU")
        return missing

    def _remember(self, sku: str, detail: dict) -> bool:
        product_id = mapping.product_id(detail)
        if product_id is None:
            return False
        self._ids[sku] = (product_id, mapping.location_ids(detail))
        return True


def make_adapter(channel: ChannelConfig, http_config: HttpConfig, secrets: SecretStore) -> FlipkartAdapter:
    app_id, app_secret = _credentials(channel, secrets)
    return FlipkartAdapter(channel, FlipkartClient(channel.base_url, app_id, app_secret, http_config))


def _credentials(channel: ChannelConfig, secrets: SecretStore) -> tuple[str, str]:
    """The app id and secret from the channel's JSON secret; errors never quote the secret."""
    try:
        raw = secrets.get(channel.credentials_ref)
    except SecretNotFound as exc:
        raise AuthError(f"Flipkart channel {channel.id}: {exc}") from None
    shape = 'a JSON object {"app_id": "...", "app_secret": "..."}'
    try:
        data = json.loads(raw)
    except ValueError:
        raise AuthError(f"Flipkart channel {channel.id}: the secret {channel.credentials_ref!r} is not JSON; "
                        f"it must be {shape}") from None
    if not isinstance(data, dict):
        raise AuthError(f"Flipkart channel {channel.id}: the secret {channel.credentials_ref!r} must be {shape}")
    blank = [k for k in ("app_id", "app_secret") if not isinstance(data.get(k), str) or not data[k].strip()]
    if blank:
        raise AuthError(f"Flipkart channel {channel.id}: the secret {channel.credentials_ref!r} lacks "
                        f"{' and '.join(blank)}; it must be {shape}")
    return data["app_id"].strip(), data["app_secret"].strip()
