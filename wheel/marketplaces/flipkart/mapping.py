"""Pure mapping between domain updates and Flipkart Listing v3 bodies and answers (no I/O).

Flipkart keys every listing body and answer by seller SKU, and needs its own ids (the FSN as
`product_id`, the seller location id) that only a getListings look-up tells; the adapter passes
them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from wheel.domain import FIELDS, ItemResult, ListingUpdate, MarketplaceListing, Price
from wheel.marketplaces.base import Call

# "You can update a maximum of 10 FSNs at a time" (listing reads and writes alike).
MAX_BATCH = 10
CURRENCY = "INR"
# The domain fields each listing operation carries.
OPERATION_FIELDS = {
    "updateInventory": frozenset({"ranged", "quantity"}),
    "updatePrice": frozenset({"price"}),
}


# -- planning ---------------------------------------------------------------------------------


def location_status(update: ListingUpdate) -> str:
    """ENABLED makes the SKU buyable from the location, DISABLED unlists it there."""
    listed = update.ranged if update.ranged is not None else update.listed
    return "ENABLED" if listed else "DISABLED"


def paise_in(price: Price) -> list[Decimal]:
    """The values of a price that are not whole rupees."""
    return [v for v in (price.mrp, price.selling_price) if v != v.to_integral_value()]


def plan(updates: Sequence[ListingUpdate]) -> tuple[list[Call], list[ItemResult]]:
    """Calls of at most 10 SKUs, and the refusals of what Flipkart cannot take."""
    disabling: list[ListingUpdate] = []
    enabling: list[ListingUpdate] = []
    pricing: list[ListingUpdate] = []
    refused: list[ItemResult] = []
    for update in updates:
        if update.ranged is not None or update.quantity is not None:
            if location_status(update) == "DISABLED":
                disabling.append(update)
            elif update.quantity is None:
                # Enabling a location sets its stock too; guessing it could oversell.
                refused.append(ItemResult(update.sku, "ranged", False, "QUANTITY_REQUIRED",
                                          "Flipkart lists a SKU at a location with its stock; no quantity was given"))
            else:
                enabling.append(update)
        if update.price is not None:
            paise = paise_in(update.price)
            if paise:
                # Never round a price: the OMS must send one Flipkart can take as it is.
                values = " and ".join(str(v) for v in paise)
                verb = "has" if len(paise) == 1 else "have"
                refused.append(ItemResult(update.sku, "price", False, "WHOLE_RUPEES_ONLY",
                                          f"Flipkart takes whole rupees only; {values} {verb} paise"))
            else:
                pricing.append(update)
    # Unlist first and list last, prices in between: a SKU is never buyable at a stale price.
    calls = [
        *_batches("updateInventory", disabling, "disable"),
        *_batches("updatePrice", pricing, "price"),
        *_batches("updateInventory", enabling, "enable"),
    ]
    return calls, refused


def _batches(operation: str, updates: list[ListingUpdate], kind: str) -> list[Call]:
    """Chunks of at most MAX_BATCH, each SKU at most once per chunk (the body is keyed by SKU)."""
    chunks: list[list[ListingUpdate]] = []
    for update in updates:
        if not chunks or len(chunks[-1]) == MAX_BATCH or any(u.sku == update.sku for u in chunks[-1]):
            chunks.append([])
        chunks[-1].append(update)
    return [Call(operation=operation, updates=tuple(chunk), kind=kind,
                 fields=frozenset().union(*(covered(operation, u) for u in chunk)))
            for chunk in chunks]


def covered(operation: str, update: ListingUpdate) -> list[str]:
    """The update's fields an operation carries, in the domain's order."""
    return [f for f in FIELDS if f in OPERATION_FIELDS[operation] and getattr(update, f) is not None]


# -- request bodies ---------------------------------------------------------------------------


def inventory_body(updates: Iterable[ListingUpdate], product_ids: Mapping[str, str],
                   location_ids: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Each SKU at the locations given for it: the channel's one to list it, all of them to unlist it."""
    return {
        u.sku: {
            "product_id": product_ids[u.sku],
            "locations": [{
                "id": location_id,
                "status": location_status(u),
                # Only a disabling update may come without a quantity (see plan): no stock then.
                "inventory": u.quantity if u.quantity is not None else 0,
            } for location_id in location_ids[u.sku]],
        }
        for u in updates
    }


def price_body(updates: Iterable[ListingUpdate], product_ids: Mapping[str, str]) -> dict[str, Any]:
    return {
        u.sku: {
            "product_id": product_ids[u.sku],
            "price": {"mrp": int(u.price.mrp), "selling_price": int(u.price.selling_price), "currency": CURRENCY},
        }
        for u in updates
    }


# -- answers ----------------------------------------------------------------------------------


def failed(operation: str, updates: Iterable[ListingUpdate], code: str, message: str) -> list[ItemResult]:
    return [ItemResult(u.sku, f, False, code, message) for u in updates for f in covered(operation, u)]


def results(operation: str, updates: Iterable[ListingUpdate], answer: Any) -> list[ItemResult]:
    """One verdict per (SKU, field) from a 200 answer, which may still hold per-SKU failures."""
    answer = answer if isinstance(answer, dict) else {}
    out = []
    for update in updates:
        ok, code, message = sku_verdict(answer.get(update.sku))
        out += [ItemResult(update.sku, f, ok, code, message) for f in covered(operation, update)]
    return out


def sku_verdict(item: Any) -> tuple[bool, str | None, str | None]:
    """(ok, code, message) for one SKU's part of an answer."""
    if not isinstance(item, dict):
        # Not counted as done: nobody may believe a change went through that Flipkart never confirmed.
        return False, "NO_VERDICT", "Flipkart's answer did not mention this SKU"
    status = str(item.get("status", "")).upper()
    errors = [e for key in ("errors", "attribute_errors") if isinstance(item.get(key), list)
              for e in item[key] if isinstance(e, dict)]
    if status == "SUCCESS":
        return True, None, None
    if status == "WARNING":
        code, message = _first(errors)
        return True, code, message
    if status == "FAILURE":
        code, message = _first([e for e in errors if str(e.get("severity", "ERROR")).upper() == "ERROR"] or errors)
        return False, code or "FAILURE", message or "Flipkart refused this SKU without saying why"
    return False, "UNKNOWN_STATUS", f"Flipkart answered status {status or 'nothing'!r} for this SKU"


def _first(errors: list[dict]) -> tuple[str | None, str | None]:
    if not errors:
        return None, None
    error = errors[0]
    code = error.get("code")
    text = error.get("description") or error.get("message")
    if error.get("attribute"):
        text = f"{error['attribute']}: {text}"
    return (str(code) if code is not None else None), (str(text) if text else None)


def error_detail(answer: Any) -> tuple[str | None, str] | None:
    """Flipkart's code and description from a 4xx body, or None when it has no listing errors."""
    if not isinstance(answer, dict):
        return None
    errors = answer.get("errors")
    if not isinstance(errors, list):
        # A per-SKU map, as the 200 answers have.
        per_sku = [(sku, part.get("errors")) for sku, part in answer.items() if isinstance(part, dict)]
        for sku, sku_errors in per_sku:
            if isinstance(sku_errors, list) and sku_errors:
                code, text = _first([e for e in sku_errors if isinstance(e, dict)])
                return code, f"SKU {sku}: {text or 'refused'}"
        return None
    code, text = _first([e for e in errors if isinstance(e, dict)])
    if code is None and text is None:
        return None
    return code, text or ""


# -- listings (look-ups and reads) --------------------------------------------------------


def listings_answer(answer: Any) -> tuple[dict[str, dict], dict[str, str]]:
    """The listings Flipkart holds, by SKU; and why it holds none for the others it names."""
    answer = answer if isinstance(answer, dict) else {}
    held = answer.get("available")
    available = {sku: detail for sku, detail in (held if isinstance(held, dict) else {}).items() if isinstance(detail, dict)}
    missing: dict[str, str] = {}
    for part, why in (("unavailable", "Flipkart holds no listing for this SKU"),
                      ("invalid", "Flipkart calls this SKU invalid")):
        names = answer.get(part) or []
        for sku in names if isinstance(names, (list, dict)) else []:
            missing.setdefault(str(sku), why)
    return available, missing


def product_id(detail: Mapping[str, Any]) -> str | None:
    value = detail.get("product_id")
    return str(value) if value else None


def not_on_sale(detail: Mapping[str, Any]) -> tuple[str, str] | None:
    """(code, why) when the listing is not on sale whatever its stock: archived, or not ACTIVE.
    Flipkart's SDK, model/MarketplaceListingDetail.java: listing_status ACTIVE | INACTIVE (required),
    archived_status ARCHIVED | NONE."""
    if str(detail.get("archived_status") or "").upper() == "ARCHIVED":
        return "LISTING_ARCHIVED", "Flipkart's listing is ARCHIVED: the SKU is not on sale until the seller restores it"
    status = str(detail.get("listing_status") or "ACTIVE").upper()
    if status != "ACTIVE":
        return "LISTING_INACTIVE", f"Flipkart's listing is {status}: the SKU is not on sale until the seller activates it"
    return None


# What a verdict's field is, in the words of a message.
FIELD_WORDS = {"ranged": "listing", "quantity": "stock", "price": "price"}


def not_on_sale_result(result: ItemResult, code: str, why: str) -> ItemResult:
    """A verdict on a listing not on sale: a failure with the reason, whatever Flipkart answered."""
    if result.ok:
        then = f"Flipkart took the {FIELD_WORDS.get(result.field, result.field)} all the same, for when it is on sale"
    else:
        then = f"Flipkart refused the update too ({result.code}: {result.message})"
    return ItemResult(result.sku, result.field, False, code, f"{why}; {then}")


def location_ids(detail: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(loc["id"]) for loc in _locations(detail) if loc.get("id"))


def _locations(detail: Mapping[str, Any]) -> list[dict]:
    locations = detail.get("locations")
    return [loc for loc in locations if isinstance(loc, dict)] if isinstance(locations, list) else []


def choose_location(ids: Sequence[str], configured: str | None) -> tuple[str | None, str | None]:
    """(location id, None), or (None, why not): with several locations only the channel can say which."""
    if configured:
        return configured, None
    if len(ids) == 1:
        return ids[0], None
    if not ids:
        return None, "Flipkart shows no seller location for this SKU; set the channel option location_id"
    return None, f"this SKU is stocked at {len(ids)} Flipkart locations; set the channel option location_id"


def marketplace_listing(sku: str, detail: Mapping[str, Any], configured_location: str | None) -> MarketplaceListing:
    """Ranged: on sale, i.e. the listing is active and ENABLED at some location (a deranged SKU must
    be at none); the quantity is the channel's location's."""
    locations = _locations(detail)
    location_id, _ = choose_location([str(loc.get("id")) for loc in locations], configured_location)
    location = next((loc for loc in locations if str(loc.get("id")) == location_id), None)
    ranged = quantity = None
    if locations:
        ranged = not_on_sale(detail) is None and any(
            str(loc.get("status", "")).upper() == "ENABLED" for loc in locations)
    if location is not None:
        inventory = location.get("inventory")
        quantity = inventory if isinstance(inventory, int) and not isinstance(inventory, bool) else None
    return MarketplaceListing(sku=sku, ranged=ranged, quantity=quantity, price=_price(detail.get("price")))


def _price(price: Any) -> Price | None:
    if not isinstance(price, dict) or price.get("mrp") is None or price.get("selling_price") is None:
        return None
    try:
        mrp, selling = Decimal(str(price["mrp"])), Decimal(str(price["selling_price"]))
    except ArithmeticError:
        return None
    # A NaN or Infinity literal (read as a float) is no price.
    return Price(mrp, selling) if mrp.is_finite() and selling.is_finite() else None
