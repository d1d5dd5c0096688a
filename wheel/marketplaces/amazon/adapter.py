"""The Amazon India adapter: a Listings Items PATCH per SKU (stock and price apart), or a
JSON_LISTINGS_FEED for bulk runs, submitted here and polled later (`poll`) so that no worker waits
on a feed; and order pulls through Orders API v2026-01-01 searchOrders (one job for orders and
cancellations)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from wheel.domain import ORDERS, ItemResult, ListingUpdate, MarketplaceListing
from wheel.marketplaces.amazon import mapping, orders
from wheel.marketplaces.amazon.client import LwaCredentials, SpApiClient, with_context
from wheel.marketplaces.base import (
    Call,
    Capabilities,
    ChannelConfig,
    HttpConfig,
    OrderPage,
    PathChoice,
    Polled,
    PullCapabilities,
    PullWindow,
    PushConditions,
    Quota,
    QuotaGate,
    Submitted,
    Workload,
)
from wheel.marketplaces.errors import AuthError, MarketplaceError, PermanentError, TransientError
from wheel.marketplaces.lookups import BatchLookups, LookupCache, MemoryLookupCache, Missing
from wheel.secrets import SecretNotFound, SecretStore

# Documented defaults (marketplaces.md 1.3); a seller may be granted more.
QUOTAS = {
    "getListingsItem": Quota(5, 10),
    "patchListingsItem": Quota(5, 5),
    "searchListingsItems": Quota(5, 5),
    "createFeedDocument": Quota(0.5, 15),
    "createFeed": Quota(0.0083, 15),
    "getFeed": Quota(2, 15),
    "getFeedDocument": Quota(0.0222, 10),
    "searchOrders": Quota(0.0056, 20),
}
# How long a JSON_LISTINGS_FEED takes from createFeed to DONE, until this channel has finished one
# (then its observed time, kept per channel in Postgres by the service layer, is used instead).
# ASSUMED: Amazon publishes no figure. Its Feeds API use case guide
# (https://developer-docs.amazon.com/sp-api/docs/feeds-api-v2021-06-30-use-case-guide) has one
# poll getFeed until DONE, FATAL or CANCELLED; feeds of listings take minutes. 5 minutes, or the
# channel's option `feed_processing_s`.
DEFAULT_FEED_PROCESSING_S = 300.0
# Amazon's searchOrders window must end at least 2 minutes ago (marketplaces.md 1.4); pulls keep
# this much more, so a clock a little ahead of Amazon's is not refused.
DEFAULT_ORDER_LAG_S, ORDER_LAG_MARGIN_S = 120.0, 5.0
ORDER_OVERLAP_S = 600.0
# A feed still processing after this long raises a warning (it is polled until it ends).
DEFAULT_FEED_WAIT_S = 900.0
FEED_FINISHED = ("DONE", "FATAL", "CANCELLED")
# The look-up cache's kind for a SKU's product type.
PRODUCT_TYPE = "amazon-product-type"


class AmazonAdapter:
    marketplace = "amazon"

    def __init__(self, channel: ChannelConfig, client: SpApiClient, *, seller_id: str,
                 marketplace_id: str = mapping.INDIA, currency: str = "INR",
                 bulk_threshold: int | None = None, feed_wait_s: float = DEFAULT_FEED_WAIT_S,
                 feed_processing_s: float = DEFAULT_FEED_PROCESSING_S,
                 order_lag_s: float = DEFAULT_ORDER_LAG_S, order_lag_margin_s: float = ORDER_LAG_MARGIN_S,
                 mrp_attribute: str = mapping.MRP_IN_OFFER,
                 fulfilled_by: tuple[str, ...] = orders.DEFAULT_FULFILLED_BY, lookups: LookupCache | None = None):
        self.channel = channel
        self.fulfilled_by = fulfilled_by
        self.client = client
        self.seller_id, self.marketplace_id, self.currency = seller_id, marketplace_id, currency
        self.feed_wait_s = feed_wait_s
        self.feed_processing_s = feed_processing_s
        self.mrp_attribute = mrp_attribute
        self.capabilities = Capabilities(
            max_batch={"patchListingsItem": 1, "createFeed": mapping.MAX_FEED_MESSAGES},
            quotas=QUOTAS, bulk_threshold=bulk_threshold, bulk_operation=mapping.FEED_OPERATION, reads_listings=True,
            # Deranging is quantity 0, so listing again needs the quantity to list with.
            ranging_needs_quantity=True,
        )
        # searchOrders by lastUpdatedTime serves new orders and cancellations alike.
        self.pull_capabilities = PullCapabilities(jobs=(ORDERS,), settle_lag_s=order_lag_s + order_lag_margin_s,
                                                  overlap_s=ORDER_OVERLAP_S)
        # SKU -> Amazon product type, for every worker and run (the workers give a cache in
        # Postgres) until it expires; looked up ahead for a batch, 20 SKUs a search.
        self.product_types = BatchLookups(lookups if lookups is not None else MemoryLookupCache(), channel.id,
                                          PRODUCT_TYPE, chunk_size=mapping.MAX_SEARCH_IDENTIFIERS,
                                          thread_name=f"amazon-lookups-{channel.id}")

    def plan(self, updates: Sequence[ListingUpdate], bulk: bool = False) -> tuple[list[Call], list[ItemResult]]:
        calls, refused = mapping.plan(updates, feed=bulk)
        self.product_types.plan(calls)  # their product types are looked up ahead when the first goes
        return calls, refused

    def choose(self, work: Workload, conditions: PushConditions) -> PathChoice:
        """PATCHes or a feed for this batch, by which has it done first (mapping.choose_path); the
        feed's processing time is this channel's observed one, else the assumed default."""
        observed = conditions.bulk_processing_s
        return mapping.choose_path(work, conditions.quotas, feed_token_wait_s=conditions.bulk_token_wait_s,
                                   feed_processing_s=observed if observed is not None else self.feed_processing_s,
                                   observed=observed is not None, bulk_threshold=self.capabilities.bulk_threshold)

    def check_credentials(self) -> str:
        """Login with Amazon's token exchange with the channel's refresh token, client id and secret
        (https://developer-docs.amazon.com/sp-api/docs/connecting-to-the-selling-partner-api, step 1):
        no SP-API call, so no operation's quota is spent."""
        self.client.access_token(refresh=True)
        return "Login with Amazon issued an access token"

    def execute(self, call: Call, quota: QuotaGate, *, request_id: str) -> list[ItemResult] | Submitted:
        if call.kind == "feed":
            return self._submit_feed(call, quota, request_id)
        if call.kind != "patch" or len(call.updates) != 1:
            raise ValueError(f"not an Amazon call this adapter planned: {call.kind!r} with {len(call.updates)} SKUs")
        (update,) = call.updates
        types, missing = self._product_types(call, quota, request_id)
        if update.sku not in types:
            return mapping.results_for(update, False, *missing[update.sku])
        body = mapping.patch_body(update, types[update.sku], self.marketplace_id, self.currency, self.mrp_attribute)
        answer = self.client.call("PATCH", mapping.item_path(self.seller_id, update.sku), "patchListingsItem", quota,
                                  params=mapping.patch_query(self.marketplace_id), body=mapping.dumps(body),
                                  request_id=request_id)
        return mapping.submission_results(update, answer)

    def read_listings(self, skus: Sequence[str], quota: QuotaGate) -> dict[str, MarketplaceListing]:
        out = {}
        for sku in skus:
            item = self._get_item(sku, quota, mapping.READ_INCLUDED_DATA, request_id=None)
            if item is not None and (product_type := mapping.product_type_of(item, self.marketplace_id)):
                self.product_types.remember({sku: product_type})
            out[sku] = mapping.listing_from_item(sku, item, self.marketplace_id)
        return out

    # -- order pulls ----------------------------------------------------------------------------

    def pull(self, job: str, window: PullWindow, cursor: dict[str, Any] | None,
             quota: QuotaGate) -> Iterator[OrderPage]:
        """searchOrders pages of the orders updated in `window` (from `cursor`'s paginationToken);
        each page's cursor holds the next token, None on the last page."""
        if job != ORDERS:
            raise ValueError(f"Amazon pulls one job, 'orders' (cancellations included), not {job!r}")
        token = cursor.get("token") if cursor else None
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"not an Amazon pull cursor: {cursor!r}")
        while True:
            answer = self.client.call("GET", orders.SEARCH_ORDERS, orders.OPERATION, quota,
                                      params=orders.search_query(self.marketplace_id, window, token,
                                                                 fulfilled_by=self.fulfilled_by))
            found = answer.get("orders") if isinstance(answer, dict) else None
            if not isinstance(found, list):
                raise TransientError("Amazon's searchOrders answer has no orders list")
            token = orders.next_token(answer)
            yield orders.read_page(self.channel.id, found, self.currency, token)
            if token is None:
                return

    # -- product types ------------------------------------------------------------------------

    def _product_types(self, call: Call, quota: QuotaGate, request_id: str
                       ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
        """Product types of the call's SKUs (cached, else looked up ahead for the batch the call
        belongs to), and why the others have none."""
        fetch = functools.partial(self._fetch_types, request_id=request_id)
        found = self.product_types.values(call, [u.sku for u in call.updates], fetch, quota)
        return ({s: v for s, v in found.items() if not isinstance(v, Missing)},
                {s: _why(v) for s, v in found.items() if isinstance(v, Missing)})

    def _fetch_types(self, chunk: list[str], quota: QuotaGate, *, request_id: str | None) -> dict[str, str | Missing]:
        """Product types of up to 20 SKUs. One SKU: getListingsItem. Several: searchListingsItems by
        up to 20 SKUs at once; a SKU holding a comma cannot go in its comma-separated `identifiers`."""
        single = set(chunk) if len(chunk) == 1 else {s for s in chunk if "," in s}
        batched = [s for s in chunk if s not in single]
        found: dict[str, str | Missing] = {}
        for sku in single:
            found[sku] = self._type_of(sku, self._get_item(sku, quota, ("summaries",), request_id))
        if batched:
            answer = self.client.call("GET", mapping.search_path(self.seller_id), "searchListingsItems", quota,
                                      params=mapping.search_query(self.marketplace_id, batched), request_id=request_id)
            items = {i.get("sku"): i for i in (answer or {}).get("items") or [] if isinstance(i, dict)}
            for sku in batched:
                found[sku] = self._type_of(sku, items.get(sku))
        return found

    def _type_of(self, sku: str, item: Any) -> str | Missing:
        product_type = mapping.product_type_of(item, self.marketplace_id) if item is not None else None
        if product_type:
            return product_type
        if item is None:
            # Patching needs an existing listing: creating one takes a full PUT with the
            # product's attributes, which the OMS does not send.
            return Missing(("NOT_FOUND", f"SKU {sku} is not listed on Amazon in {self.marketplace_id}"))
        return Missing(("NO_PRODUCT_TYPE", f"Amazon gave no product type for SKU {sku}"))

    def _get_item(self, sku: str, quota: QuotaGate, included: Sequence[str], request_id: str | None) -> Any:
        """getListingsItem's answer, or None when Amazon does not know the SKU (404)."""
        try:
            return self.client.call("GET", mapping.item_path(self.seller_id, sku), "getListingsItem", quota,
                                    params=mapping.get_query(self.marketplace_id, included), request_id=request_id)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    # -- JSON_LISTINGS_FEED -------------------------------------------------------------------

    def _submit_feed(self, call: Call, quota: QuotaGate, request_id: str) -> Submitted | list[ItemResult]:
        """Look up product types, upload the document and create the feed; its verdicts come from
        `poll`. Amazon processes a feed in minutes; polling it here held the only Amazon worker
        (pulls included) for up to 15 minutes."""
        types, missing = self._product_types(call, quota, request_id)
        results = [r for u in call.updates if u.sku in missing for r in mapping.results_for(u, False, *missing[u.sku])]
        sendable = [u for u in call.updates if u.sku in types]
        if not sendable:
            return results
        items = [(u, types[u.sku]) for u in sendable]
        document = mapping.feed_document(self.seller_id, items, self.marketplace_id, self.currency, self.mrp_attribute)
        created = self.client.call("POST", mapping.FEED_DOCUMENTS, "createFeedDocument", quota,
                                   body=mapping.dumps(mapping.create_feed_document_request()), request_id=request_id)
        self.client.upload(_field(created, "url"), mapping.dumps(document).encode("utf-8"), mapping.FEED_CONTENT_TYPE)
        feed = self.client.call("POST", mapping.FEEDS, "createFeed", quota, request_id=request_id,
                                body=mapping.dumps(mapping.create_feed_request(_field(created, "feedDocumentId"),
                                                                            self.marketplace_id)))
        return Submitted(reference=_field(feed, "feedId"), sent=tuple(sendable), results=tuple(results),
                         state={"product_types": {u.sku: types[u.sku] for u in sendable}})

    def poll(self, submitted: Submitted, quota: QuotaGate) -> Polled:
        """getFeed; once it has ended, its processing report read into verdicts.

        DONE: the report judges every message. FATAL: Amazon may have applied some, none or all
        messages; the report, when Amazon wrote one, names the failed ones (recorded per SKU, not
        resubmitted) and the rest are in doubt. CANCELLED: nothing was applied, all in doubt.
        """
        feed_id = submitted.reference
        feed = self.client.call("GET", f"{mapping.FEEDS}/{feed_id}", "getFeed", quota)
        status = feed.get("processingStatus") if isinstance(feed, dict) else None
        if status not in FEED_FINISHED:
            return Polled(finished=False, status=str(status or "UNKNOWN"))
        took = _processing_s(feed)
        types = submitted.state.get("product_types") or {}
        messages = mapping.feed_messages([(u, types.get(u.sku, "")) for u in submitted.sent])
        report_id = feed.get("resultFeedDocumentId") if status in ("DONE", "FATAL") else None
        if not isinstance(report_id, str) or not report_id:
            if status == "DONE":
                raise TransientError(f"Amazon feed {feed_id} is DONE without a processing report")
            return Polled(finished=True, status=status, doubtful=tuple(part for _, part, _ in messages),
                          processing_s=took)
        try:
            document = self.client.call("GET", f"{mapping.FEED_DOCUMENTS}/{report_id}", "getFeedDocument", quota)
            report = self.client.download(_field(document, "url"), document.get("compressionAlgorithm"))
        except MarketplaceError as exc:
            raise with_context(exc, f"Amazon feed {feed_id} ({status}) report") from None
        results, doubtful = mapping.report_results(messages, report, complete=status == "DONE")
        return Polled(finished=True, status=status, results=tuple(results), doubtful=tuple(doubtful),
                      processing_s=took)


def _processing_s(feed: dict[str, Any]) -> float | None:
    """createdTime to processingEndTime of a finished feed (Feed in feeds_2021-06-30.json: ISO 8601
    date-times; processingEndTime is optional), or None when either is missing or unreadable."""
    try:
        created = datetime.fromisoformat(str(feed["createdTime"]).replace("Z", "+00:00"))
        ended = datetime.fromisoformat(str(feed["processingEndTime"]).replace("Z", "+00:00"))
        seconds = (ended - created).total_seconds()
    except (KeyError, ValueError, TypeError):
        return None
    return seconds if seconds >= 0 else None


def _why(missing: Missing) -> tuple[str, str]:
    if isinstance(missing.why, tuple) and len(missing.why) == 2:
        return missing.why
    return "NOT_FOUND", "Amazon's answer did not mention this SKU"


def _field(answer: Any, name: str) -> str:
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise TransientError(f"Amazon's answer has no {name}")
    return value


def make_adapter(channel: ChannelConfig, http_config: HttpConfig, secrets: SecretStore,
                 lookups: LookupCache | None = None) -> AmazonAdapter:
    """The adapter for one Amazon channel; credentials are the JSON secret
    `{"client_id", "client_secret", "refresh_token"}` named by `channel.credentials_ref`."""
    credentials = _credentials(channel, secrets)
    options = channel.options
    seller_id = options.get("seller_id")
    if not isinstance(seller_id, str) or not seller_id.strip():
        raise PermanentError(f"Amazon channel {channel.id} needs options.seller_id (the Merchant Token in "
                             f"Seller Central)", code="CHANNEL_CONFIG")
    # Set, it decides PATCH or feed by the count of waiting SKUs alone (the rule before the choice
    # by estimated finish time); unset, the estimates decide.
    bulk_threshold = options.get("bulk_threshold")
    feed_wait_s = options.get("feed_wait_s", DEFAULT_FEED_WAIT_S)
    feed_processing_s = options.get("feed_processing_s", DEFAULT_FEED_PROCESSING_S)
    order_lag_s = options.get("order_lag_s", DEFAULT_ORDER_LAG_S)
    # How much more than the lag a pull keeps, for a clock a little ahead of Amazon's.
    order_lag_margin_s = options.get("order_lag_margin_s", ORDER_LAG_MARGIN_S)
    if isinstance(order_lag_margin_s, bool) or not isinstance(order_lag_margin_s, (int, float)) or order_lag_margin_s < 0:
        raise PermanentError(f"Amazon channel {channel.id}: options.order_lag_margin_s must be a number of seconds >= 0",
                             code="CHANNEL_CONFIG")
    mrp_attribute = options.get("mrp_attribute", mapping.MRP_IN_OFFER)
    if mrp_attribute not in mapping.MRP_ATTRIBUTES:
        raise PermanentError(f"Amazon channel {channel.id}: options.mrp_attribute must be one of "
                             f"{', '.join(mapping.MRP_ATTRIBUTES)} (where the product type keeps the MRP)",
                             code="CHANNEL_CONFIG")
    if bulk_threshold is not None and (isinstance(bulk_threshold, bool) or not isinstance(bulk_threshold, int)
                                       or bulk_threshold < 1):
        raise PermanentError(f"Amazon channel {channel.id}: options.bulk_threshold must be a whole number >= 1",
                             code="CHANNEL_CONFIG")
    if isinstance(feed_wait_s, bool) or not isinstance(feed_wait_s, (int, float)) or feed_wait_s <= 0:
        raise PermanentError(f"Amazon channel {channel.id}: options.feed_wait_s must be a positive number of seconds",
                             code="CHANNEL_CONFIG")
    if isinstance(feed_processing_s, bool) or not isinstance(feed_processing_s, (int, float)) or feed_processing_s < 0:
        raise PermanentError(f"Amazon channel {channel.id}: options.feed_processing_s must be a number of seconds >= 0 "
                             f"(how long a feed takes until one has been observed)", code="CHANNEL_CONFIG")
    if isinstance(order_lag_s, bool) or not isinstance(order_lag_s, (int, float)) or order_lag_s < 0:
        raise PermanentError(f"Amazon channel {channel.id}: options.order_lag_s must be a number of seconds >= 0",
                             code="CHANNEL_CONFIG")
    fulfilled_by = options.get("fulfilled_by", list(orders.DEFAULT_FULFILLED_BY))
    if (not isinstance(fulfilled_by, list) or not fulfilled_by
            or not all(isinstance(v, str) and v in orders.FULFILLED_BY for v in fulfilled_by)
            or len(set(fulfilled_by)) != len(fulfilled_by)):
        raise PermanentError(f"Amazon channel {channel.id}: options.fulfilled_by must be a list of "
                             f"{' and/or '.join(orders.FULFILLED_BY)} without repeats, e.g. [\"MERCHANT\"] (the "
                             f"default: orders the seller ships) or [\"MERCHANT\", \"AMAZON\"] (FBA orders too); "
                             f"not {fulfilled_by!r}", code="CHANNEL_CONFIG")
    client = SpApiClient(channel.base_url, options.get("lwa_url") or "https://api.amazon.com/auth/o2/token",
                         credentials, http_config)
    return AmazonAdapter(channel, client, seller_id=seller_id.strip(),
                         marketplace_id=options.get("marketplace_id") or mapping.INDIA,
                         currency=options.get("currency") or "INR", bulk_threshold=bulk_threshold,
                         feed_wait_s=float(feed_wait_s), feed_processing_s=float(feed_processing_s),
                         order_lag_s=float(order_lag_s),
                         order_lag_margin_s=float(order_lag_margin_s), mrp_attribute=mrp_attribute,
                         fulfilled_by=tuple(fulfilled_by), lookups=lookups)


def _credentials(channel: ChannelConfig, secrets: SecretStore) -> LwaCredentials:
    ref = channel.credentials_ref
    try:
        raw = secrets.get(ref)
    except SecretNotFound as exc:
        raise AuthError(str(exc)) from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    keys = ("client_id", "client_secret", "refresh_token")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k].strip() for k in keys):
        # Never echo the secret, not even part of it.
        raise AuthError(f"the credentials {ref!r} of Amazon channel {channel.id} must be a JSON object with "
                        f"non-empty client_id, client_secret and refresh_token")
    return LwaCredentials(*(data[k].strip() for k in keys))
