"""The Flipkart adapter: listing status and stock through update/inventory, prices through
update/price, 10 SKUs a call, with the FSNs, location ids and listing status looked up (getListings,
10 SKUs a call, ahead of the updates, in a thread of its own) and kept a while in the look-up cache
every worker shares (wheel/marketplaces/lookups.py); and pulls of new orders and cancellations
through the Order Management v3 shipment search.

A listing can be at several seller locations. Stock goes to the channel's one (the only one, or
the channel option location_id); unlisting disables the SKU at every location of the listing,
looked up afresh, so that it is on sale nowhere. Stock and prices for a listing that is not on
sale (INACTIVE or ARCHIVED) are sent all the same, so it is right the day it is back, but reported
as failures (LISTING_INACTIVE, LISTING_ARCHIVED): the SKU is not on sale, whatever Flipkart answers.

New orders: each run sweeps every APPROVED shipment due from 7 days back to 2 days ahead, page by
page (see orders.py); cancellations: a cancellationDate window per cancellation type.
Pull cursors: orders {"next": nextPageUrl}; cancellations, one query per cancellation type,
{"type_index": i, "type": <type>, "next": nextPageUrl or None (the type's first page)}.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from wheel.domain import CANCELLATIONS, ORDER_JOBS, ORDERS, ItemResult, ListingUpdate, MarketplaceListing
from wheel.marketplaces.base import (
    Call,
    Capabilities,
    ChannelConfig,
    HttpConfig,
    OrderPage,
    PullCapabilities,
    PullWindow,
    Quota,
    QuotaGate,
)
from wheel.marketplaces.errors import AuthError, PermanentError
from wheel.marketplaces.flipkart import mapping, orders
from wheel.marketplaces.flipkart.client import FlipkartClient
from wheel.marketplaces.lookups import BatchLookups, LookupCache, MemoryLookupCache, Missing
from wheel.secrets import SecretNotFound, SecretStore

LISTING_OPERATIONS = ("updateInventory", "updatePrice", "getListings")
ORDER_OPERATIONS = ("searchShipments", "getShipments")
# The look-up cache's kind for what getListings tells of a SKU (FSN, location ids, listing status).
LISTING = "flipkart-listing"


@dataclass(frozen=True)
class Listed:
    """What a getListings look-up told about a SKU."""

    product_id: str
    locations: tuple[str, ...]
    not_on_sale: tuple[str, str] | None  # (code, why)

    def to_json(self) -> dict[str, Any]:
        return {"product_id": self.product_id, "locations": list(self.locations),
                "not_on_sale": list(self.not_on_sale) if self.not_on_sale else None}

    @classmethod
    def from_json(cls, value: Any) -> Listed | None:
        try:
            not_on_sale = value.get("not_on_sale")
            return cls(str(value["product_id"]), tuple(str(i) for i in value["locations"]),
                       (str(not_on_sale[0]), str(not_on_sale[1])) if not_on_sale else None)
        except (AttributeError, KeyError, TypeError, IndexError):
            return None  # not what this version keeps: looked up again


class FlipkartAdapter:
    marketplace = "flipkart"
    # Flipkart publishes no quotas: 5 requests a second (burst 5) per operation is an assumption
    # that keeps concurrency low, as its docs ask; a channel can override it. UNCONFIRMED for
    # getListings too: its look-ups take that bucket of their own, never the updates'.
    capabilities = Capabilities(
        max_batch={op: mapping.MAX_BATCH for op in LISTING_OPERATIONS},
        quotas={op: Quota(5, 5) for op in (*LISTING_OPERATIONS, *ORDER_OPERATIONS)},
        reads_listings=True,
        ranging_needs_quantity=True,
        # A bucket per operation (above): stock and price go side by side, each with two requests
        # in flight at most (a request slower than the quota's pace does not hold the next back),
        # paced by its bucket; a few, as the docs ask.
        in_flight=2,
    )
    pull_capabilities = PullCapabilities(jobs=ORDER_JOBS, settle_lag_s=0, overlap_s=600)

    def __init__(self, channel: ChannelConfig, client: FlipkartClient, lookups: LookupCache | None = None):
        self.channel = channel
        self._client = client
        self._location_id: str | None = (channel.options or {}).get("location_id") or None
        # What getListings told, for every worker and run (the workers give a cache in Postgres),
        # until it expires; looked up ahead of the updates, on getListings' own quota bucket.
        self._lookups = BatchLookups(lookups if lookups is not None else MemoryLookupCache(), channel.id, LISTING,
                                     chunk_size=mapping.MAX_BATCH, encode=Listed.to_json, decode=Listed.from_json,
                                     thread_name=f"flipkart-lookups-{channel.id}",
                                     in_flight=self.capabilities.in_flight)

    def plan(self, updates: Sequence[ListingUpdate], bulk: bool = False) -> tuple[list[Call], list[ItemResult]]:
        # No bulk path here (Capabilities.bulk_operation is None): `bulk` is never asked for.
        calls, refused = mapping.plan(updates)
        self._lookups.plan(calls)  # their SKUs are looked up ahead when the first of them goes
        return calls, refused

    def check_credentials(self) -> str:
        """A fresh client-credentials token for the app id and secret (FK-DOCS, "Authentication"):
        the token call takes no operation's quota."""
        self._client.check_token()
        return "Flipkart issued an access token"

    def execute(self, call: Call, quota: QuotaGate, *, request_id: str) -> list[ItemResult]:
        operation = call.operation
        unlisting = {u.sku for u in call.updates if _unlisting(call, u)}
        ids, missing = self._listed(call, quota, request_id)
        out: list[ItemResult] = []
        sending: list[ListingUpdate] = []
        product_ids: dict[str, str] = {}
        location_ids: dict[str, tuple[str, ...]] = {}
        stale: set[str] = set()
        for update in call.updates:
            listed = ids.get(update.sku)
            if listed is None:
                out += mapping.failed(operation, [update], "SKU_NOT_LISTED",
                                      missing.get(update.sku, "Flipkart holds no listing for this SKU"))
                continue
            if update.sku in unlisting and listed.locations:
                location_ids[update.sku] = listed.locations  # off sale everywhere, not just at ours
            elif operation == "updateInventory":
                location_id, why_not = mapping.choose_location(listed.locations, self._location_id)
                if location_id is None:
                    out += mapping.failed(operation, [update], "LOCATION_UNKNOWN", why_not)
                    stale.add(update.sku)  # the seller may add the location before the retry
                    continue
                location_ids[update.sku] = (location_id,)
            product_ids[update.sku] = listed.product_id
            sending.append(update)
        if sending:
            if operation == "updateInventory":
                body = mapping.inventory_body(sending, product_ids, location_ids)
            else:
                body = mapping.price_body(sending, product_ids)
            answer = self._client.update(operation, body, quota, request_id)
            results = mapping.results(operation, sending, answer)
            not_on_sale = {sku: ids[sku].not_on_sale for sku in product_ids if sku not in unlisting}
            for index, result in enumerate(results):
                if not_on_sale.get(result.sku):
                    results[index] = result = mapping.not_on_sale_result(result, *not_on_sale[result.sku])
                if not result.ok:
                    # A stale FSN or location is one cause of a refusal, a listing put back on sale the
                    # way out of another: every worker looks them up afresh next time.
                    stale.add(result.sku)
            out += results
        self._lookups.forget(stale)
        return out

    def read_listings(self, skus: Sequence[str], quota: QuotaGate) -> dict[str, MarketplaceListing]:
        held: dict[str, MarketplaceListing] = {}
        unique = list(dict.fromkeys(skus))
        for start in range(0, len(unique), mapping.MAX_BATCH):
            chunk = unique[start:start + mapping.MAX_BATCH]
            available, _ = mapping.listings_answer(self._client.get_listings(chunk, quota))
            self._lookups.remember({sku: listed for sku in chunk if sku in available
                                    and (listed := _listed(available[sku])) is not None})
            for sku in chunk:
                if sku in available:
                    held[sku] = mapping.marketplace_listing(sku, available[sku], self._location_id)
        return held

    # -- pulling orders and cancellations -------------------------------------------------------

    def pull(self, job: str, window: PullWindow, cursor: dict[str, Any] | None,
             quota: QuotaGate) -> Iterator[OrderPage]:
        if job == ORDERS:
            return self._pull_orders(window, cursor, quota)
        if job == CANCELLATIONS:
            return self._pull_cancellations(window, cursor, quota)
        raise PermanentError(f"Flipkart has no pull job {job!r}")

    def _pull_orders(self, window: PullWindow, cursor: dict[str, Any] | None, quota: QuotaGate) -> Iterator[OrderPage]:
        next_url = _next_of(cursor)
        while True:
            shipments, next_url = self._search(orders.orders_query(window), next_url, quota)
            calls = 1
            details: dict[str, dict] = {}
            ids = orders.shipment_ids(shipments)
            for start in range(0, len(ids), orders.MAX_DETAILS):
                answer = self._client.get_shipments(ids[start:start + orders.MAX_DETAILS], quota)
                details.update(orders.details_answer(answer))
                calls += 1
            page = orders.orders_page(self.channel.id, shipments, details)
            page.cursor, page.calls = ({"next": next_url} if next_url else None), calls
            yield page
            if next_url is None:
                return

    def _pull_cancellations(self, window: PullWindow, cursor: dict[str, Any] | None,
                            quota: QuotaGate) -> Iterator[OrderPage]:
        types = orders.CANCELLATION_TYPES
        first, next_url = _cancellation_cursor(cursor)
        for index in range(first, len(types)):
            query = orders.cancellations_query(window, types[index])
            while True:
                shipments, next_url = self._search(query, next_url, quota)
                page = orders.cancellations_page(self.channel.id, shipments, types[index])
                if next_url is not None:
                    page.cursor = {"type_index": index, "type": types[index], "next": next_url}
                elif index + 1 < len(types):
                    page.cursor = {"type_index": index + 1, "type": types[index + 1], "next": None}
                page.calls = 1
                yield page
                if next_url is None:
                    break

    def _search(self, query: dict[str, Any], next_url: str | None,
                quota: QuotaGate) -> tuple[list[dict], str | None]:
        """One search page: the first (POST) or the one at `next_url`; its shipments and the next
        page's URL (None: this was the last)."""
        if next_url is None:
            answer = self._client.search_shipments(query, quota)
        else:
            answer = self._client.next_shipments(next_url, quota)
        shipments, following = orders.search_answer(answer)
        if following is not None and following == next_url:
            raise PermanentError("Flipkart's shipment search gave the same nextPageUrl twice")
        return shipments, following

    # -- look-ups: FSNs, location ids and listing status -------------------------------------------

    def _listed(self, call: Call, quota: QuotaGate, request_id: str) -> tuple[dict[str, Listed], dict[str, str]]:
        """What getListings tells of the call's SKUs (cached, or looked up ahead for the batch the
        call belongs to), and why Flipkart holds no listing for the others. Unlisting always looks
        up afresh (a location may have been added)."""
        skus = [u.sku for u in call.updates]
        found = self._lookups.values(call, skus, functools.partial(self._fetch, request_id=request_id), quota,
                                     fresh=lambda c: {u.sku for u in c.updates if _unlisting(c, u)})
        return ({s: v for s, v in found.items() if isinstance(v, Listed)},
                {s: v.why for s, v in found.items() if isinstance(v, Missing)})

    def _fetch(self, chunk: list[str], gate: QuotaGate, *, request_id: str) -> dict[str, Listed | Missing]:
        """One getListings call: per SKU, its Listed or why Flipkart has none."""
        available, why = mapping.listings_answer(self._client.get_listings(chunk, gate, request_id))
        found: dict[str, Listed | Missing] = {}
        for sku in chunk:
            listed = _listed(available[sku]) if sku in available else None
            found[sku] = listed or Missing(why.get(sku, "Flipkart holds no listing for this SKU"))
        return found


def _unlisting(call: Call, update: ListingUpdate) -> bool:
    return call.operation == "updateInventory" and mapping.location_status(update) == "DISABLED"


def _listed(detail: dict) -> Listed | None:
    product_id = mapping.product_id(detail)
    if product_id is None:
        return None
    return Listed(product_id, mapping.location_ids(detail), mapping.not_on_sale(detail))


def _next_of(cursor: dict[str, Any] | None) -> str | None:
    if cursor is None:
        return None
    next_url = cursor.get("next") if isinstance(cursor, dict) else None
    if not isinstance(next_url, str) or not next_url:
        raise PermanentError(f"a Flipkart orders cursor needs a nextPageUrl as next; got {cursor!r:.200}")
    return next_url


def _cancellation_cursor(cursor: dict[str, Any] | None) -> tuple[int, str | None]:
    """(index of the cancellation type, the nextPageUrl within it or None for its first page)."""
    if cursor is None:
        return 0, None
    types = orders.CANCELLATION_TYPES
    index = cursor.get("type_index") if isinstance(cursor, dict) else None
    next_url = cursor.get("next") if isinstance(cursor, dict) else None
    if (not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(types)
            or cursor.get("type", types[index]) != types[index]
            or not (next_url is None or (isinstance(next_url, str) and next_url))):
        raise PermanentError(f"unreadable Flipkart cancellations cursor {cursor!r:.200}")
    return index, next_url


def make_adapter(channel: ChannelConfig, http_config: HttpConfig, secrets: SecretStore,
                 lookups: LookupCache | None = None) -> FlipkartAdapter:
    app_id, app_secret = _credentials(channel, secrets)
    return FlipkartAdapter(channel, FlipkartClient(channel.base_url, app_id, app_secret, http_config), lookups)


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
