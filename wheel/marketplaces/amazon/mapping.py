"""Pure mapping between domain updates and SP-API's Listings Items and JSON_LISTINGS_FEED shapes.

No I/O here: request paths, query parameters and bodies are built from updates, and answers
(submission responses, feed processing reports, listings items) are read back into ItemResults
and MarketplaceListings. Money is Decimal throughout and written as a JSON number with two
decimals by `dumps`, never through float.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from wheel.domain import ItemResult, ListingUpdate, MarketplaceListing, Price
from wheel.marketplaces.base import Call, PathChoice, Quota, Workload

INDIA = "A21TJRUUN4KGV"
ISSUE_LOCALE = "en_US"
MAX_FEED_MESSAGES = 25_000  # listings-feed-schema-v2.json: messages.maxItems
MAX_SEARCH_IDENTIFIERS = 20  # searchListingsItems: identifiers.maxItems and pageSize.maximum
SELLER_FULFILLED = "DEFAULT"  # fulfillment_channel_code of merchant-fulfilled stock
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"  # exact string UNCONFIRMED (marketplaces.md 1.3)
CENT = Decimal("0.01")

LISTINGS_ITEMS = "/listings/2021-08-01/items"
FEED_DOCUMENTS = "/feeds/2021-06-30/documents"
FEEDS = "/feeds/2021-06-30/feeds"

# What read_listings asks getListingsItem for: product type, price attributes, stock.
READ_INCLUDED_DATA = ("summaries", "attributes", "fulfillmentAvailability")


# -- planning ---------------------------------------------------------------------------------


def plan(updates: Sequence[ListingUpdate], feed: bool) -> tuple[list[Call], list[ItemResult]]:
    """One PATCH per SKU and part (stock, price), or (`feed`) JSON_LISTINGS_FEEDs of up to 25,000
    messages; which one is `choose_path`'s answer.

    Values Amazon cannot take are refused here, field by field; the rest of an update still goes.
    """
    sendable: list[ListingUpdate] = []
    refused: list[ItemResult] = []
    for update in updates:
        if not update.fields:
            continue  # nothing to push: a PATCH needs at least one operation
        checked, refusals = _check(update)
        refused.extend(refusals)
        if checked is not None:
            sendable.append(checked)
    if feed and sendable:
        # A feed carries the stock and the price of a SKU as two messages (see feed_messages):
        # at most 25,000 messages a feed.
        chunks: list[list[ListingUpdate]] = [[]]
        messages = 0
        for update in sendable:
            size = len(split(update))
            if messages + size > MAX_FEED_MESSAGES:
                chunks.append([])
                messages = 0
            chunks[-1].append(update)
            messages += size
        return [Call("createFeed", tuple(chunk), frozenset().union(*(u.fields for u in chunk)), kind="feed")
                for chunk in chunks], refused
    # Stock and price go in separate submissions: Amazon validates a submission as a whole, so a
    # price it refuses (INVALID) would otherwise fail the stock update with it, and stock is the
    # oversell risk. Both are usually not due together (they come from different OMS queues).
    calls = []
    for update in sendable:
        calls.extend(Call("patchListingsItem", (part,), part.fields, kind="patch") for part in split(update))
    return calls, refused


# -- PATCH or feed ----------------------------------------------------------------------------------

# What a PATCH carries: one SKU, and (plan) either its stock or its price, never both. The Listings
# Items API would take both in one request (a ListingsItemPatchRequest holds a list of patches, each
# an attribute: listingsItems_2021-08-01.json), so one PATCH per SKU is what the API allows; we send
# two when both are due, because Amazon validates a submission as a whole and a refused price must
# not fail the stock (see plan). A feed carries the same parts as separate messages.
PATCH_OPERATION, FEED_OPERATION = "patchListingsItem", "createFeed"


def choose_path(work: Workload, quotas: Mapping[str, Quota], *, feed_processing_s: float,
                feed_token_wait_s: float = 0.0, observed: bool = False,
                bulk_threshold: int | None = None) -> PathChoice:
    """PATCHes or a feed, by which would have the batch done first.

    PATCHes: the calls needed (a SKU's stock and price are one each) at the channel's PATCH rate
    (`quotas` as in force: documented times quota_scale, then the channel's overrides). A feed: the
    wait for its createFeed token(s) (0 while the bucket holds them) plus the time this channel's
    feeds take from createFeed to DONE (`feed_processing_s`: observed, or an assumed default). The
    feed's upload and the product-type look-ups (both paths need them) are left out: seconds.
    A tie goes to the PATCHes, whose verdicts come one by one. `bulk_threshold`, when the channel
    sets it, decides instead (a feed from that many SKUs); the estimates are still given.
    """
    quota = quotas.get(PATCH_OPERATION)
    rate = quota.rate_per_s if quota is not None else 0.0
    calls = work.stock + work.price
    patch_s = calls / rate if rate > 0 else (0.0 if calls == 0 else float("inf"))
    feeds = math.ceil(calls / MAX_FEED_MESSAGES)
    feed_s = feed_token_wait_s + feed_processing_s
    if bulk_threshold is not None:
        path, reason = ("feed" if calls and work.skus >= bulk_threshold else "patch"), "bulk_threshold"
    else:
        path, reason = ("feed" if calls and feed_s < patch_s else "patch"), "estimate"
    return PathChoice(path=path, reason=reason, skus=work.skus, patch_calls=calls, patch_rate_per_s=rate,
                      patch_s=patch_s, feeds=feeds, feed_token_wait_s=feed_token_wait_s,
                      feed_processing_s=feed_processing_s, feed_processing_observed=observed)


def split(update: ListingUpdate) -> list[ListingUpdate]:
    """The update as its stock part (ranged, quantity) and its price part, each only if due."""
    parts = []
    if update.ranged is not None or update.quantity is not None:
        parts.append(dataclasses.replace(update, price=None))
    if update.price is not None:
        parts.append(dataclasses.replace(update, ranged=None, quantity=None))
    return parts


def _check(update: ListingUpdate) -> tuple[ListingUpdate | None, list[ItemResult]]:
    problems: dict[str, tuple[str, str]] = {}
    # Amazon has no list/unlist switch that keeps the listing: deranging is quantity 0, so a
    # `ranged` change is only as good as the quantity sent with it.
    if update.quantity is not None and update.quantity < 0:
        problems["quantity"] = ("INVALID_QUANTITY", f"quantity {update.quantity} is negative")
        if update.ranged is not None:
            problems["ranged"] = problems["quantity"]
    elif update.ranged is True and update.quantity is None:
        problems["ranged"] = ("QUANTITY_REQUIRED", "on Amazon a SKU is listed by sending its quantity; none was given")
    elif update.ranged is False and update.quantity:
        message = f"a deranged SKU must have quantity 0 on Amazon, not {update.quantity}"
        problems["ranged"] = problems["quantity"] = ("INCONSISTENT_QUANTITY", message)
    if update.price is not None:
        price_problem = _price_problem(update.price)
        if price_problem:
            problems["price"] = ("INVALID_PRICE", price_problem)
    refusals = [ItemResult(update.sku, f, False, code, message) for f, (code, message) in problems.items()]
    if not problems:
        return update, []
    remaining = dataclasses.replace(update, **{f: None for f in problems})
    return (remaining if remaining.fields else None), refusals


def _price_problem(price: Price) -> str | None:
    for name, value in (("mrp", price.mrp), ("selling price", price.selling_price)):
        if not value.is_finite() or value <= 0:
            return f"{name} {value} must be a positive amount"
        if value != value.quantize(CENT):
            # Rounding silently would push a price the OMS never set.
            return f"{name} {value} has more than two decimal places"
    return None


# -- requests ---------------------------------------------------------------------------------


def item_path(seller_id: str, sku: str) -> str:
    # SKUs may hold '/', '#', spaces...: every reserved character is escaped.
    return f"{LISTINGS_ITEMS}/{quote(seller_id, safe='')}/{quote(sku, safe='')}"


def search_path(seller_id: str) -> str:
    return f"{LISTINGS_ITEMS}/{quote(seller_id, safe='')}"


def patch_query(marketplace_id: str) -> dict[str, str]:
    return {"marketplaceIds": marketplace_id, "issueLocale": ISSUE_LOCALE}


def get_query(marketplace_id: str, included_data: Sequence[str] = ("summaries",)) -> dict[str, str]:
    return {"marketplaceIds": marketplace_id, "includedData": ",".join(included_data)}


def search_query(marketplace_id: str, skus: Sequence[str]) -> dict[str, str | int]:
    """Product types of up to 20 SKUs in one searchListingsItems call (identifiers are comma-separated)."""
    if not 0 < len(skus) <= MAX_SEARCH_IDENTIFIERS or any("," in s for s in skus):
        raise ValueError("search by 1 to 20 SKUs, none containing a comma")
    return {"marketplaceIds": marketplace_id, "identifiers": ",".join(skus), "identifiersType": "SKU",
            "includedData": "summaries", "pageSize": MAX_SEARCH_IDENTIFIERS}


# Where the MRP (India's maximum retail price) goes. Amazon.in's product type definitions
# (getDefinitionsProductType for marketplace A21TJRUUN4KGV) name it; they cannot be read from here,
# so the attribute is a channel option (`mrp_attribute`) and this default is UNCONFIRMED:
# `purchasable_offer[].maximum_retail_price[].schedule[].value_with_tax`, a sub-attribute of the
# offer beside `our_price` (the offer shape: "Manage purchasable offer",
# https://developer-docs.amazon.com/sp-api/docs/manage-purchasable-offer). The other choice is the
# top-level `list_price` ({marketplace_id, currency, value_with_tax}) that other marketplaces use.
MRP_IN_OFFER = "purchasable_offer.maximum_retail_price"
MRP_LIST_PRICE = "list_price"
MRP_ATTRIBUTES = (MRP_IN_OFFER, MRP_LIST_PRICE)
# B2C: the offer every buyer sees. A B2B (Amazon Business) offer has audience "B2B" and is another
# instance of purchasable_offer, which a merge keyed by audience leaves alone.
AUDIENCE = "ALL"


def patches(update: ListingUpdate, marketplace_id: str, currency: str,
            mrp_attribute: str = MRP_IN_OFFER) -> list[dict[str, Any]]:
    """The JSON Patch operations carrying every field of `update`.

    Every operation is a `merge` (Listings Items API, since 2025-06-16; PatchOperation.op in
    listingsItems_2021-08-01.json): it changes only the sub-attributes sent, in the instance the
    selectors name (fulfillment_channel_code; marketplace_id, currency and audience for the offer).
    A `replace` would drop the rest: handling time (lead_time_to_ship_max_days) and restock_date on
    every stock push; sale prices (discounted_price), min/max seller-allowed prices and the B2B
    offer on every price push ("Manage purchasable offer",
    https://developer-docs.amazon.com/sp-api/docs/manage-purchasable-offer).
    """
    out: list[dict[str, Any]] = []
    # A deranging without a quantity still means quantity 0 (plan refuses the other cases).
    quantity = update.quantity if update.quantity is not None else (0 if update.ranged is False else None)
    if quantity is not None:
        out.append({"op": "merge", "path": "/attributes/fulfillment_availability",
                    "value": [{"fulfillment_channel_code": SELLER_FULFILLED, "quantity": quantity}]})
    if update.price is not None:
        # India prices include tax, hence value_with_tax.
        offer: dict[str, Any] = {"marketplace_id": marketplace_id, "currency": currency, "audience": AUDIENCE,
                                 "our_price": [{"schedule": [{"value_with_tax": update.price.selling_price}]}]}
        if mrp_attribute == MRP_IN_OFFER:
            offer["maximum_retail_price"] = [{"schedule": [{"value_with_tax": update.price.mrp}]}]
        out.append({"op": "merge", "path": "/attributes/purchasable_offer", "value": [offer]})
        if mrp_attribute == MRP_LIST_PRICE:
            out.append({"op": "merge", "path": "/attributes/list_price",
                        "value": [{"marketplace_id": marketplace_id, "currency": currency,
                                   "value_with_tax": update.price.mrp}]})
    return out


def patch_body(update: ListingUpdate, product_type: str, marketplace_id: str, currency: str,
               mrp_attribute: str = MRP_IN_OFFER) -> dict[str, Any]:
    """A ListingsItemPatchRequest."""
    return {"productType": product_type, "patches": patches(update, marketplace_id, currency, mrp_attribute)}


def feed_messages(items: Sequence[tuple[ListingUpdate, str]]) -> list[tuple[int, ListingUpdate, str]]:
    """(messageId, part, product type) per message: a SKU's stock and price are two messages, so
    the feed's report judges them apart, as two PATCHes would be."""
    out, n = [], 0
    for update, product_type in items:
        for part in split(update):
            n += 1
            out.append((n, part, product_type))
    return out


def feed_document(seller_id: str, items: Sequence[tuple[ListingUpdate, str]], marketplace_id: str,
                  currency: str, mrp_attribute: str = MRP_IN_OFFER) -> dict[str, Any]:
    """A JSON_LISTINGS_FEED of PATCH messages, numbered as feed_messages numbers them."""
    return {
        "header": {"sellerId": seller_id, "version": "2.0", "issueLocale": ISSUE_LOCALE},
        "messages": [
            {"messageId": n, "sku": part.sku, "operationType": "PATCH", "productType": product_type,
             "patches": patches(part, marketplace_id, currency, mrp_attribute)}
            for n, part, product_type in feed_messages(items)
        ],
    }


def create_feed_document_request() -> dict[str, str]:
    return {"contentType": FEED_CONTENT_TYPE}


def create_feed_request(feed_document_id: str, marketplace_id: str) -> dict[str, Any]:
    return {"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [marketplace_id],
            "inputFeedDocumentId": feed_document_id}


def dumps(value: Any) -> str:
    """JSON text in which every Decimal (only money here) is a number with exactly two decimals."""
    if isinstance(value, Decimal):
        return format(value.quantize(CENT), "f")
    if isinstance(value, float):
        raise TypeError("money must be a Decimal, not a float")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


# -- answers ----------------------------------------------------------------------------------


def results_for(update: ListingUpdate, ok: bool, code: str | None = None, message: str | None = None) -> list[ItemResult]:
    """The same verdict on every field the update carries (`ranged` rides on the quantity patch)."""
    return [ItemResult(update.sku, f, ok, code, message) for f in sorted(update.fields)]


def submission_results(update: ListingUpdate, answer: Any) -> list[ItemResult]:
    """Verdicts from a ListingsItemSubmissionResponse: HTTP 200 with INVALID is a business failure."""
    status = answer.get("status") if isinstance(answer, dict) else None
    if status in ("ACCEPTED", "VALID"):
        return results_for(update, True)
    issues = answer.get("issues") if isinstance(answer, dict) else None
    code, message = _first_error(issues) or (str(status or "UNREADABLE"), f"Amazon answered status {status!r}")
    return results_for(update, False, code, message)


def _first_error(issues: Any) -> tuple[str, str] | None:
    listed = [i for i in issues if isinstance(i, dict)] if isinstance(issues, list) else []
    chosen = next((i for i in listed if i.get("severity") == "ERROR"), None) or (listed[0] if listed else None)
    if chosen is None:
        return None
    return str(chosen.get("code") or "ERROR"), str(chosen.get("message") or "")


def report_results(messages: Sequence[tuple[int, ListingUpdate, str]], report: Any, *, complete: bool = True,
                   ) -> tuple[list[ItemResult], list[ListingUpdate]]:
    """Verdicts from a JSON_LISTINGS_FEED processing report (listings-feed-processing-report v2),
    for the messages as feed_messages numbered them; and the parts the report leaves in doubt.

    A message with an ERROR issue failed; an ERROR issue with no messageId (the feed as a whole
    could not be read) fails every message. The others were accepted, unless the report covers
    fewer messages than were sent (summary.messagesProcessed): then the ones it does not name
    are in doubt, as are all of a FATAL feed's unnamed messages (`complete=False`) ("Some, none, or all of the
    operations within the feed may have completed successfully": Feed.processingStatus in
    feeds_2021-06-30.json); the caller pushes those again.
    """
    issues = report.get("issues") if isinstance(report, dict) else None
    summary = report.get("summary") if isinstance(report, dict) else None
    processed = summary.get("messagesProcessed") if isinstance(summary, dict) else None
    errors: dict[int | None, tuple[str, str]] = {}
    for issue in issues if isinstance(issues, list) else []:
        if isinstance(issue, dict) and issue.get("severity") == "ERROR":
            key = issue.get("messageId")
            errors.setdefault(key if isinstance(key, int) else None,
                              (str(issue.get("code") or "ERROR"), str(issue.get("message") or "")))
    complete = complete and isinstance(processed, int) and not isinstance(processed, bool) and processed >= len(messages)
    results: list[ItemResult] = []
    doubtful: list[ListingUpdate] = []
    for n, part, _ in messages:
        failure = errors.get(n) or errors.get(None)
        if failure:
            results.extend(results_for(part, False, *failure))
        elif complete:
            results.extend(results_for(part, True))
        else:
            doubtful.append(part)
    return results, doubtful


def product_type_of(item: Any, marketplace_id: str) -> str | None:
    """`summaries[].productType` for our marketplace (else the first summary's)."""
    listed = item.get("summaries") if isinstance(item, dict) else None
    summaries = [s for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []
    chosen = next((s for s in summaries if s.get("marketplaceId") == marketplace_id), summaries[0] if summaries else None)
    product_type = chosen.get("productType") if chosen else None
    return product_type if isinstance(product_type, str) and product_type else None


def listing_from_item(sku: str, item: Any, marketplace_id: str) -> MarketplaceListing:
    """What a getListingsItem answer says about stock and price (None where it says nothing)."""
    if not isinstance(item, dict):
        return MarketplaceListing(sku)
    attributes = item.get("attributes") if isinstance(item.get("attributes"), dict) else {}
    quantity = _quantity(item.get("fulfillmentAvailability"), "fulfillmentChannelCode")
    if quantity is None:
        quantity = _quantity(attributes.get("fulfillment_availability"), "fulfillment_channel_code")
    offer = _ours(attributes.get("purchasable_offer"), marketplace_id)
    selling = _money(offer, "our_price", 0, "schedule", 0, "value_with_tax")
    # The MRP wherever the channel keeps it (MRP_ATTRIBUTES): in the offer, else list_price.
    mrp = _money(offer, "maximum_retail_price", 0, "schedule", 0, "value_with_tax")
    list_price = _ours(attributes.get("list_price"), marketplace_id)
    if mrp is None:
        mrp = _money(list_price, "value_with_tax")
    if mrp is None:
        mrp = _money(list_price, "value")
    price = Price(mrp=mrp, selling_price=selling) if mrp is not None and selling is not None else None
    return MarketplaceListing(sku, ranged=None if quantity is None else quantity > 0, quantity=quantity, price=price)


def _quantity(entries: Any, channel_key: str) -> int | None:
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get(channel_key) == SELLER_FULFILLED:
            quantity = entry.get("quantity")
            return quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else None
    return None


def _ours(entries: Any, marketplace_id: str) -> Any:
    """The attribute entry for our marketplace (an entry without marketplace_id applies to all),
    the B2C offer (audience ALL, or none) before any other."""
    listed = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    mine = [e for e in listed if e.get("marketplace_id") in (marketplace_id, None)]
    return next((e for e in mine if e.get("audience") in (AUDIENCE, None)), mine[0] if mine else None)


def _money(value: Any, *path: str | int) -> Decimal | None:
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        # Answers are parsed with parse_float=Decimal, so a float here was never money.
        return None
    try:
        # quantize too: an amount of more digits than the context holds (1E+999999) cannot be one
        return Decimal(value).quantize(CENT)
    except ArithmeticError:
        return None
