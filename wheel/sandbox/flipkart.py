"""Flipkart Marketplace Seller API v3, as documented: the client-credentials token and the
Listing v3 calls (get listings, update inventory, update price), at most 10 SKUs a call, with
per-SKU FAILUREs inside an HTTP 200.

So that tests and demos need no catalogue set-up, a listing is created the first time a SKU is
seen, with a deterministic FSN ("FSN" + 12 hex characters of sha1(channel:sku)) and the one seller
location "LOC-<channel>". A SKU starting with NOT-LISTED- is never in the catalogue (it comes back
`unavailable`). In the channel's settings `client_id` is the app id and `token` the app secret;
`refuse_token` makes every bearer token refused while the token endpoint keeps issuing them (as when
an app's access is revoked). The token endpoint takes no quota and no injected faults.
"""

from __future__ import annotations

import hashlib
import math
import time
from decimal import Decimal
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from wheel.sandbox.core import ChannelBehaviour, SandboxCore, error, json_response

PREFIX = "/flipkart"
MAX_BATCH = 10
NOT_LISTED_PREFIX = "NOT-LISTED-"

# Flipkart documents integer error codes but publishes no list of them: these are the sandbox's own.
BAD_REQUEST = 4000
SKU_NOT_FOUND = 4101
WRONG_PRODUCT_ID = 4102
WRONG_LOCATION = 4103
BAD_STATUS = 4104
BAD_INVENTORY = 4105
BAD_PRICE = 4201
PRICE_ABOVE_MRP = 4202
BAD_CURRENCY = 4203


def fsn(channel: str, sku: str) -> str:
    return "FSN" + hashlib.sha1(f"{channel}:{sku}".encode()).hexdigest()[:12].upper()


def location_id(channel: str) -> str:
    return f"LOC-{channel}"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad_request(description: str) -> Response:
    return json_response({"errors": [{"severity": "ERROR", "code": BAD_REQUEST, "description": description}]}, 400)


def _failure(code: int, description: str, path: str = "") -> dict[str, Any]:
    return {"status": "FAILURE", "attribute_errors": [],
            "errors": [{"severity": "ERROR", "code": code, "description": description, "path": path}]}


SUCCESS = {"status": "SUCCESS", "errors": [], "attribute_errors": []}


class Flipkart:
    marketplace = "flipkart"
    # Flipkart publishes none; the sandbox enforces the adapter's assumed defaults.
    quotas: dict[str, tuple[float, float]] = {"updateInventory": (5, 5), "updatePrice": (5, 5), "getListings": (5, 5)}

    def rules(self) -> list[Rule]:
        listings = f"{PREFIX}/sellers/listings/v3"
        return [
            Rule(f"{PREFIX}/oauth-service/oauth/token", endpoint="token", methods=["GET"]),
            Rule(f"{listings}/update/inventory", endpoint="update_inventory", methods=["POST"]),
            Rule(f"{listings}/update/price", endpoint="update_price", methods=["POST"]),
            Rule(f"{listings}/<path:skus>", endpoint="get_listings", methods=["GET"]),
        ]

    # -- the token ----------------------------------------------------------------------------

    def on_token(self, request: Request, core: SandboxCore) -> Response:
        channel, response = self._token(request, core)
        core.record(request, self.marketplace, channel or "", response.status_code, "token", None)
        return response

    def _token(self, request: Request, core: SandboxCore) -> tuple[str | None, Response]:
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username or not auth.password:
            return None, json_response({"error": "invalid_client"}, 401)
        found = core.find_channel(self.marketplace, client_id=auth.username, token=auth.password)
        if found is None:
            return None, json_response({"error": "invalid_client"}, 401)
        channel, behaviour = found
        if behaviour.delay_s:
            time.sleep(behaviour.delay_s)
        if request.args.get("grant_type") != "client_credentials":
            return channel, json_response({"error": "unsupported_grant_type"}, 400)
        if "Seller_Api" not in (request.args.get("scope") or "").split(","):
            return channel, json_response({"error": "invalid_scope"}, 400)
        token = core.issue_token(channel, behaviour.token_ttl_s)
        return channel, json_response({"access_token": token, "token_type": "bearer",
                                       "expires_in": math.ceil(behaviour.token_ttl_s), "scope": "Seller_Api"})

    def _authorized(self, request: Request, core: SandboxCore) -> tuple[str, ChannelBehaviour] | None:
        supplied = request.headers.get("Authorization", "")
        if not supplied.startswith("Bearer "):
            return None
        channel = core.channel_for_token(supplied[len("Bearer "):])
        behaviour = core.channel(self.marketplace, channel) if channel else None
        return (channel, behaviour) if behaviour is not None else None

    # -- listing calls ------------------------------------------------------------------------

    def on_get_listings(self, request: Request, core: SandboxCore, skus: str) -> Response:
        names = [s for s in skus.split(",") if s]
        channel, response = self._listing_call(request, core, "getListings", names, self._get_listings)
        core.record(request, self.marketplace, channel, response.status_code, "getListings", {"skus": names})
        return response

    def on_update_inventory(self, request: Request, core: SandboxCore) -> Response:
        body = request.get_json(silent=True)
        channel, response = self._listing_call(request, core, "updateInventory", body, self._update_inventory)
        core.record(request, self.marketplace, channel, response.status_code, "updateInventory", body)
        return response

    def on_update_price(self, request: Request, core: SandboxCore) -> Response:
        body = request.get_json(silent=True)
        channel, response = self._listing_call(request, core, "updatePrice", body, self._update_price)
        core.record(request, self.marketplace, channel, response.status_code, "updatePrice", body)
        return response

    def _listing_call(self, request, core: SandboxCore, operation: str, items: Any, handle) -> tuple[str, Response]:
        """Auth, admission (latency, faults, quota) and the batch limit, then the handler."""
        found = self._authorized(request, core)
        if found is None:
            return "", error(401, "UNAUTHORIZED", "invalid or expired access token")
        channel, behaviour = found
        refusal = core.admit(behaviour, channel, operation)
        if refusal is not None:
            return channel, refusal
        if operation == "getListings":
            if not items:
                return channel, _bad_request("name at least one SKU")
        elif not isinstance(items, dict) or not items:
            return channel, _bad_request("expected a JSON object of SKU -> request")
        if len(items) > MAX_BATCH:
            return channel, _bad_request(f"at most {MAX_BATCH} SKUs per call; got {len(items)}")
        with core.lock:
            return channel, handle(core, channel, items)

    def _listing(self, core: SandboxCore, channel: str, sku: str) -> dict[str, Any] | None:
        if sku.startswith(NOT_LISTED_PREFIX):
            return None
        listing = core.listing(channel, sku)
        listing.setdefault("product_id", fsn(channel, sku))
        listing.setdefault("location_id", location_id(channel))
        return listing

    def _get_listings(self, core: SandboxCore, channel: str, skus: list[str]) -> Response:
        available, unavailable = {}, []
        for sku in skus:
            listing = self._listing(core, channel, sku)
            if listing is None:
                unavailable.append(sku)
                continue
            detail: dict[str, Any] = {
                "listing_id": "LST" + listing["product_id"],
                "product_id": listing["product_id"],
                "listing_status": "ACTIVE",
                "fulfillment_profile": "NON_FBF",
                "locations": [{"id": listing["location_id"],
                               "status": "ENABLED" if listing.get("ranged") else "DISABLED",
                               "inventory": listing.get("quantity", 0)}],
            }
            if "mrp" in listing:
                detail["price"] = {"mrp": int(Decimal(listing["mrp"])),
                                   "selling_price": int(Decimal(listing["selling_price"])), "currency": "INR"}
            available[sku] = detail
        return json_response({"available": available, "unavailable": unavailable, "invalid": []})

    def _update_inventory(self, core: SandboxCore, channel: str, body: dict[str, Any]) -> Response:
        answer = {}
        for sku, item in body.items():
            listing = self._listing(core, channel, sku)
            failure = _inventory_failure(listing, item)
            if failure is not None:
                answer[sku] = failure
                continue
            for location in item["locations"]:
                listing["ranged"] = location["status"] == "ENABLED"
                if "inventory" in location:
                    listing["quantity"] = location["inventory"]
            answer[sku] = SUCCESS
        return json_response(answer)

    def _update_price(self, core: SandboxCore, channel: str, body: dict[str, Any]) -> Response:
        answer = {}
        for sku, item in body.items():
            listing = self._listing(core, channel, sku)
            failure = _price_failure(listing, item)
            if failure is not None:
                answer[sku] = failure
                continue
            price = item["price"]
            listing["mrp"] = f"{price['mrp']}.00"
            listing["selling_price"] = f"{price['selling_price']}.00"
            answer[sku] = SUCCESS
        return json_response(answer)


def _common_failure(listing: dict[str, Any] | None, item: Any) -> dict[str, Any] | None:
    if listing is None:
        return _failure(SKU_NOT_FOUND, "no listing exists for this SKU", "sku")
    if not isinstance(item, dict):
        return _failure(BAD_REQUEST, "expected an object with product_id")
    if item.get("product_id") != listing["product_id"]:
        return _failure(WRONG_PRODUCT_ID, "product_id does not match this SKU's listing", "product_id")
    return None


def _inventory_failure(listing: dict[str, Any] | None, item: Any) -> dict[str, Any] | None:
    failure = _common_failure(listing, item)
    if failure is not None:
        return failure
    locations = item.get("locations")
    if not isinstance(locations, list) or not locations:
        return _failure(BAD_REQUEST, "locations must be a non-empty list", "locations")
    for index, location in enumerate(locations):
        path = f"locations[{index}]"
        if not isinstance(location, dict) or location.get("id") != listing["location_id"]:
            return _failure(WRONG_LOCATION, "unknown seller location id", f"{path}.id")
        if location.get("status") not in ("ENABLED", "DISABLED"):
            return _failure(BAD_STATUS, "status must be ENABLED or DISABLED", f"{path}.status")
        if "inventory" in location and (not _whole(location["inventory"]) or location["inventory"] < 0):
            return _failure(BAD_INVENTORY, "inventory must be a whole number >= 0", f"{path}.inventory")
    return None


def _price_failure(listing: dict[str, Any] | None, item: Any) -> dict[str, Any] | None:
    failure = _common_failure(listing, item)
    if failure is not None:
        return failure
    price = item.get("price")
    if not isinstance(price, dict):
        return _failure(BAD_PRICE, "price must be an object with mrp, selling_price and currency", "price")
    for key in ("mrp", "selling_price"):
        if not _whole(price.get(key)) or price[key] <= 0:
            return _failure(BAD_PRICE, f"{key} must be a whole number of rupees above 0", f"price.{key}")
    if price.get("currency") != "INR":
        return _failure(BAD_CURRENCY, "currency must be INR", "price.currency")
    if price["selling_price"] > price["mrp"]:
        return _failure(PRICE_ABOVE_MRP, "selling_price cannot be more than mrp", "price.selling_price")
    return None
