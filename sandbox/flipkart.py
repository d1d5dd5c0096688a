"""Flipkart Marketplace Seller API v3, as documented: the client-credentials token, the
Listing v3 calls (get listings, update inventory, update price), at most 10 SKUs a call, with
per-SKU FAILUREs inside an HTTP 200, and the Order Management v3 shipment search and details.

Sources, cited next to each behaviour: Flipkart's published Java SDK, github
Flipkart/flipkart-seller-api-java-sdk ("[SDK] <path>"); Flipkart's reference pages under
https://seller.flipkart.com/api-docs/ ("[DOCS] <page>"); and Unicommerce's production connector,
github vipingarg7/uniware-flipkart-service ("[UNI] <path>"), as secondary evidence. What no source
settles is marked UNCONFIRMED, with what it rests on.

So that tests and demos need no catalogue set-up, a listing is created the first time a SKU is
seen, with a deterministic FSN ("FSN" + 12 hex characters of sha1(channel:sku)), ACTIVE, and every
seller location of the channel ("LOC-<channel>" unless its options name others) DISABLED with no
stock. A SKU starting with NOT-LISTED- is never in the catalogue (it comes back `unavailable`). A
listing's `listing_status` (ACTIVE | INACTIVE), `archived_status` (NONE | ARCHIVED) and `locations`
({id: {"status", "inventory"}}) can be changed in the sandbox's state; `ranged` (ENABLED at some
location) and `quantity` (the stock at all its locations) sum them up. In the channel's settings
`client_id` is the app id and `token` the app secret; `refuse_token` makes every bearer token
refused while the token endpoint keeps issuing them (as when an app's access is revoked). The token
endpoint takes no quota and no injected faults.

Channel options (ChannelBehaviour.options) this emulator reads:
  address_pincode_key  "pinCode" (the default, as the SDK has it) or "pincode" (the older reference page)
  held_in_search       true: a preDispatch search that names no `hold` returns held shipments too
  locations            the seller location ids every listing of the channel has

Orders come from the sandbox's order book: one sandbox order is one shipment (`shipmentId` is its
shipment_id, every item's `orderId` its order_id), a line is an order item, APPROVED or CANCELLED.
What is Flipkart's own sits in the order's `extra`: `approved_at` (epoch seconds; the shipment is
invisible before then, whatever its orderDate), `hold` (true: held), `dispatch_after` and
`dispatch_by` (epoch seconds), `landmark`. PATCH /flipkart/_sandbox/shipments/<channel>/<shipmentId>
changes them (to release a hold, say). The search pages by orderDate (then shipmentId), whatever
sort field is asked for; its next_token carries the filter and the last shipment seen, so a page
never repeats or skips a shipment when orders arrive or are cancelled between pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.core import ChannelBehaviour, SandboxCore, error, json_response
from sandbox.orders import SandboxAddress, SandboxLine, SandboxOrder

PREFIX = "/flipkart"
MAX_BATCH = 10
NOT_LISTED_PREFIX = "NOT-LISTED-"
MAX_PAGE_SIZE = 20  # Flipkart's v2 order search documents 20; v3's limit is unpublished
MAX_SHIPMENT_IDS = 25
IST = timezone(timedelta(hours=5, minutes=30))
# [SDK] docs/Filter.md (TypeEnum, StatesEnum, ShipmentTypesEnum) and docs/Sort.md (FieldEnum).
FILTER_TYPES = ("preDispatch", "postDispatch", "cancelled")
STATES = ("APPROVED", "PACKING_IN_PROGRESS", "FORM_FAILED", "PACKED", "READY_TO_DISPATCH", "PICKUP_COMPLETE",
          "CANCELLED", "RETURN_REQUESTED", "RETURNED", "SHIPPED", "DELIVERED", "COMPLETED")
SHIPMENT_TYPES = ("EXPRESS", "NORMAL", "SELF")
SORT_FIELDS = ("dispatchByDate", "orderDate", "modifiedDate", "dispatchAfterDate")
DATE_FILTERS = ("orderDate", "dispatchAfterDate", "dispatchByDate", "modifiedDate", "cancellationDate")
# Flipkart's cancellationType -> the order book's cancel_type.
CANCELLATION_TYPES = {"buyerCancellation": "buyer_cancellation", "sellerCancellation": "seller_cancellation",
                      "marketplaceCancellation": "marketplace_cancellation"}
# The postcode's key in an address: [SDK] model/Address.java @JsonProperty("pinCode") (so also [UNI]
# dto/Address.java); the older reference page [DOCS] order-api-docs/v3/GetShipmentDetails.html says
# `deliveryAddress.pincode`. The channel option address_pincode_key picks one.
PINCODE_KEYS = ("pinCode", "pincode")
# UNCONFIRMED: Flipkart publishes no dispatch SLA; the sandbox gives a shipment a day after its
# dispatchAfterDate.
DISPATCH_SLA_S = 24 * 3600
# UNCONFIRMED: [SDK] docs/Address.md has a stateCode string but no list of values; the two-letter
# vehicle-registration codes of the sandbox's states.
STATE_CODES = {"TamilNadu": "TN", "Maharashtra": "MH", "Karnataka": "KA", "WestBengal": "WB"}
# The Flipkart attributes of a shipment that steering may set, and their JSON types.
SHIPMENT_ATTRIBUTES = {"hold": (bool,), "approved_at": (int, float), "dispatch_after": (int, float),
                       "dispatch_by": (int, float), "landmark": (str,)}

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


def _unauthorized() -> Response:
    # "If an expired Access Token is used, API requests would fail with 401 HTTP status code"
    # ([DOCS] FMSAPI.html). UNCONFIRMED: the body. Flipkart's token service answers its own refusals
    # as {"error", "error_description"} (as a third-party guide quotes it:
    # https://adapter.deepecom.com/docs/flipkart/authorization); the sandbox answers a refused bearer
    # token the same way, with OAuth 2.0's `invalid_token` (RFC 6750 section 3.1).
    return json_response({"error": "invalid_token", "error_description": "Invalid or expired access token"}, 401,
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _failure(code: int, description: str, path: str = "") -> dict[str, Any]:
    return {"status": "FAILURE", "attribute_errors": [],
            "errors": [{"severity": "ERROR", "code": code, "description": description, "path": path}]}


SUCCESS = {"status": "SUCCESS", "errors": [], "attribute_errors": []}


def _options(behaviour: ChannelBehaviour | None) -> dict[str, Any]:
    return (behaviour.options if behaviour is not None else None) or {}


def channel_locations(behaviour: ChannelBehaviour | None, channel: str) -> list[str]:
    """The seller locations a channel's listings have: its option `locations`, else LOC-<channel>."""
    ids = _options(behaviour).get("locations")
    if isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids):
        return list(dict.fromkeys(ids))
    return [location_id(channel)]


class Flipkart:
    marketplace = "flipkart"
    # Flipkart publishes none; the sandbox enforces the adapter's assumed defaults.
    quotas: dict[str, tuple[float, float]] = {"updateInventory": (5, 5), "updatePrice": (5, 5), "getListings": (5, 5),
                                              "searchShipments": (5, 5), "getShipments": (5, 5)}

    def rules(self) -> list[Rule]:
        listings = f"{PREFIX}/sellers/listings/v3"
        shipments = f"{PREFIX}/sellers/v3/shipments"
        return [
            Rule(f"{PREFIX}/oauth-service/oauth/token", endpoint="token", methods=["GET"]),
            Rule(f"{listings}/update/inventory", endpoint="update_inventory", methods=["POST"]),
            Rule(f"{listings}/update/price", endpoint="update_price", methods=["POST"]),
            Rule(f"{listings}/<path:skus>", endpoint="get_listings", methods=["GET"]),
            Rule(f"{shipments}/filter", endpoint="search_shipments", methods=["POST"]),
            Rule(f"{shipments}/filter", endpoint="next_shipments", methods=["GET"]),
            Rule(f"{shipments}/<ids>", endpoint="get_shipments", methods=["GET"]),
            # Steering, not Flipkart's API.
            Rule(f"{PREFIX}/_sandbox/shipments/<channel>/<shipment_id>", endpoint="steer_shipment", methods=["PATCH"]),
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
        # The token stops working `expires_in` seconds after it is issued (SandboxCore.channel_for_token):
        # "use the expires_in seconds value which you get while generating the token" to track it
        # (https://flipkart.github.io/fk-api-platform-docs/docs/best-practices; Flipkart's tokens live
        # about 60 days, expires_in 5183999 in [DOCS] listing-api-docs/authTut.html). The sandbox's
        # default lifetime is the channel's token_ttl_s (an hour), so tests can see one run out.
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
        channel, refusal = self._admit(request, core, operation)
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
        # [SDK] docs/MarketplaceListingDetail.md: a listing has `locations` (a list of Location: id,
        # status ENABLED | DISABLED, inventory), a listing_status ACTIVE | INACTIVE and an
        # archived_status ARCHIVED | NONE (model/MarketplaceListingDetail.java JSON_PROPERTY_*).
        listing.setdefault("locations", {loc: {"status": "DISABLED", "inventory": 0}
                                         for loc in channel_locations(core.channel(self.marketplace, channel), channel)})
        listing.setdefault("listing_status", "ACTIVE")
        listing.setdefault("archived_status", "NONE")
        _sum_up(listing)
        return listing

    def _get_listings(self, core: SandboxCore, channel: str, skus: list[str]) -> Response:
        # [SDK] docs/GetMarketplaceListingDetailsResponse.md: available (SKU -> detail), unavailable, invalid.
        available, unavailable = {}, []
        for sku in skus:
            listing = self._listing(core, channel, sku)
            if listing is None:
                unavailable.append(sku)
                continue
            detail: dict[str, Any] = {
                "listing_id": "LST" + listing["product_id"],
                "product_id": listing["product_id"],
                "listing_status": listing["listing_status"],
                "archived_status": listing["archived_status"],
                "fulfillment_profile": "NON_FBF",
                "locations": [{"id": loc, "status": place["status"], "inventory": place["inventory"]}
                              for loc, place in listing["locations"].items()],
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
            # UNCONFIRMED: only the locations named change (the update names each by id; [SDK]
            # docs/Location.md), and an INACTIVE or ARCHIVED listing takes the update as SUCCESS, so
            # only the listing's status tells that the SKU is not on sale (the worst case for a seller).
            for location in item["locations"]:
                place = listing["locations"][location["id"]]
                place["status"] = location["status"]
                if "inventory" in location:
                    place["inventory"] = location["inventory"]
            _sum_up(listing)
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


    # -- order management: shipment search and details ----------------------------------------

    def on_search_shipments(self, request: Request, core: SandboxCore) -> Response:
        body = request.get_json(silent=True)
        channel, response = self._order_call(request, core, "searchShipments",
                                             lambda ch: self._first_page(core, ch, body))
        core.record(request, self.marketplace, channel, response.status_code, "searchShipments", body)
        return response

    def on_next_shipments(self, request: Request, core: SandboxCore) -> Response:
        token = request.args.get("next_token", "")
        channel, response = self._order_call(request, core, "searchShipments",
                                             lambda ch: self._next_page(core, ch, token))
        core.record(request, self.marketplace, channel, response.status_code, "searchShipments", {"next_token": token})
        return response

    def on_get_shipments(self, request: Request, core: SandboxCore, ids: str) -> Response:
        names = [i for i in ids.split(",") if i]
        channel, response = self._order_call(request, core, "getShipments",
                                             lambda ch: self._shipment_details(core, ch, names))
        core.record(request, self.marketplace, channel, response.status_code, "getShipments", {"shipment_ids": names})
        return response

    def on_steer_shipment(self, request: Request, core: SandboxCore, channel: str, shipment_id: str) -> Response:
        """Change a shipment's Flipkart attributes (SHIPMENT_ATTRIBUTES; null removes one): approve
        it, hold or release it, move its dispatch dates. Not recorded as a call."""
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not data:
            return error(400, "BAD_REQUEST", f"send a JSON object of any of {', '.join(SHIPMENT_ATTRIBUTES)}")
        for name, value in data.items():
            allowed = SHIPMENT_ATTRIBUTES.get(name)
            if allowed is None:
                return error(400, "BAD_REQUEST", f"unknown shipment attribute {name!r}; known: {', '.join(SHIPMENT_ATTRIBUTES)}")
            if value is not None and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
                return error(400, "BAD_REQUEST", f"{name} must be {' or '.join(t.__name__ for t in allowed)} or null")
        with core.orders.lock:
            order = next((o for o in core.orders.for_channel(channel) if o.shipment_id == shipment_id), None)
            if order is None:
                return error(404, "SHIPMENT_NOT_FOUND", f"no shipment {shipment_id} on {channel}")
            for name, value in data.items():
                if value is None:
                    order.extra.pop(name, None)
                else:
                    order.extra[name] = value
            order.updated = time.time()
            return json_response({"channel": channel, "shipment_id": shipment_id, "extra": order.extra})

    def _order_call(self, request: Request, core: SandboxCore, operation: str, handle) -> tuple[str, Response]:
        """Auth and admission (latency, faults, quota), then the handler."""
        channel, refusal = self._admit(request, core, operation)
        return channel, refusal if refusal is not None else handle(channel)

    def _admit(self, request: Request, core: SandboxCore, operation: str) -> tuple[str, Response | None]:
        """The caller's channel, and the refusal (bad or expired token, injected fault, 429) if any."""
        found = self._authorized(request, core)
        if found is None:
            return "", _unauthorized()
        channel, behaviour = found
        return channel, core.admit(behaviour, channel, operation)

    def _first_page(self, core: SandboxCore, channel: str, body: Any) -> Response:
        return self._page(core, channel, body, None)

    def _next_page(self, core: SandboxCore, channel: str, token: str) -> Response:
        try:
            state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            body, after = state["body"], (float(state["after"][0]), str(state["after"][1]))
            if state["channel"] != channel:
                return _bad_request("next_token belongs to another seller")
        except (ValueError, TypeError, KeyError, IndexError, binascii.Error):
            return _bad_request("next_token is not one this API issued")
        return self._page(core, channel, body, after)

    def _page(self, core: SandboxCore, channel: str, body: Any, after: tuple[float, str] | None) -> Response:
        """One page of the shipments the search `body` matches, in orderDate order, after the shipment `after`."""
        query = _search_query(body)
        if isinstance(query, str):
            return _bad_request(query)
        behaviour = core.channel(self.marketplace, channel)
        query["held_in_search"] = _options(behaviour).get("held_in_search") is True
        location = channel_locations(behaviour, channel)[0]
        desc, now = query["desc"], time.time()
        with core.orders.lock:
            found = sorted((o for o in core.orders.for_channel(channel) if _matches(o, query, location, now)),
                           key=_sort_key, reverse=desc)
            if after is not None:
                found = [o for o in found if (_sort_key(o) < after if desc else _sort_key(o) > after)]
            page = found[:query["size"]]
            answer: dict[str, Any] = {"hasMore": len(found) > len(page), "nextPageUrl": None,
                                      "shipments": [_shipment(channel, o, location) for o in page]}
        if answer["hasMore"]:
            state = {"channel": channel, "body": body, "after": list(_sort_key(page[-1]))}
            token = base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")
            # Relative to /sellers, as Flipkart's appears to be.
            answer["nextPageUrl"] = f"/v3/shipments/filter?next_token={token}"
        return json_response(answer)

    def _shipment_details(self, core: SandboxCore, channel: str, ids: list[str]) -> Response:
        if not ids:
            return _bad_request("name at least one shipment id")
        if len(ids) > MAX_SHIPMENT_IDS:
            return _bad_request(f"at most {MAX_SHIPMENT_IDS} shipment ids per call; got {len(ids)}")
        behaviour = core.channel(self.marketplace, channel)
        key = _options(behaviour).get("address_pincode_key", PINCODE_KEYS[0])
        key = key if key in PINCODE_KEYS else PINCODE_KEYS[0]
        now = time.time()
        with core.orders.lock:
            by_id = {o.shipment_id: o for o in core.orders.for_channel(channel) if _visible(o, now)}
            # [SDK] docs/ShipmentDetails.md (and [UNI] dto/ShipmentDetails.java): orderId, shipmentId,
            # orderItems as full OrderItems, so an item cancelled on its own shows its CANCELLED status
            # here too; the delivery and billing Address. UNCONFIRMED: Flipkart's newer reference
            # (https://flipkart.github.io/fk-api-platform-docs/docs/mp-api_versioned/get-shipment-details)
            # lists only ids and handling flags under orderItems.
            shipments = [{
                "orderId": order.order_id,
                "shipmentId": order.shipment_id,
                "locationId": channel_locations(behaviour, channel)[0],
                "orderItems": [_item(channel, order, line) for line in order.lines],
                "deliveryAddress": _address(order.ship_to, key, _landmark(order)),
                "billingAddress": _address(order.bill_to, key, None),
                "buyerDetails": {"firstName": order.bill_to.first_name, "lastName": order.bill_to.last_name},
            } for order in (by_id[i] for i in dict.fromkeys(ids) if i in by_id)]
        return json_response({"shipments": shipments})


# -- shipments ----------------------------------------------------------------------------------


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, IST).isoformat(timespec="milliseconds")


def _instant(value: Any) -> float | None:
    """Epoch seconds of an ISO date-time with an offset; None when it is not one."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _epoch(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _shipment_state(order: SandboxOrder) -> dict[str, Any]:
    """A shipment's Flipkart attributes, from the order's extra, with the sandbox's defaults."""
    extra = order.extra
    approved = _epoch(extra.get("approved_at"), order.created)
    dispatch_after = _epoch(extra.get("dispatch_after"), approved)
    return {"approved_at": approved, "hold": extra.get("hold") is True, "dispatch_after": dispatch_after,
            "dispatch_by": _epoch(extra.get("dispatch_by"), dispatch_after + DISPATCH_SLA_S),
            "updated": max(order.updated, approved)}


def _visible(order: SandboxOrder, now: float) -> bool:
    # UNCONFIRMED: the documented states ([SDK] docs/Filter.md StatesEnum) start at APPROVED, so the
    # sandbox shows a shipment to the seller only once it is approved; until then (payment or COD
    # verification) it is in no search and no details answer, whatever its orderDate.
    return _shipment_state(order)["approved_at"] <= now


def _landmark(order: SandboxOrder) -> str | None:
    landmark = order.extra.get("landmark")
    return landmark if isinstance(landmark, str) else None


def _range(filter_: dict[str, Any], name: str) -> list[float | None] | str | None:
    value = filter_.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"filter.{name} must be an object with from and to"
    bounds: list[float | None] = []
    for end in ("from", "to"):
        if value.get(end) is None:
            bounds.append(None)
            continue
        instant = _instant(value[end])
        if instant is None:
            return f"filter.{name}.{end} must be an ISO 8601 date-time with an offset"
        bounds.append(instant)
    return bounds


def _search_query(body: Any) -> dict[str, Any] | str:
    """The search request as the sandbox applies it, or why it is a bad request."""
    if not isinstance(body, dict) or not isinstance(body.get("filter"), dict):
        return "send a JSON object with a filter"
    filter_ = body["filter"]
    if filter_.get("type") not in FILTER_TYPES:
        return f"filter.type must be one of {', '.join(FILTER_TYPES)}"
    states = filter_.get("states")
    if not isinstance(states, list) or not states or any(state not in STATES for state in states):
        return f"filter.states must be a non-empty list of {', '.join(STATES)}"
    cancellation_type = filter_.get("cancellationType")
    if filter_["type"] == "cancelled":
        if cancellation_type is None:
            return "filter.cancellationType is mandatory if filter type is cancelled"
        if cancellation_type not in CANCELLATION_TYPES:
            return f"filter.cancellationType must be one of {', '.join(CANCELLATION_TYPES)}"
    dates = {}
    for name in DATE_FILTERS:  # [SDK] docs/Filter.md and docs/DateFilter.md: from and to, both optional
        bounds = _range(filter_, name)
        if isinstance(bounds, str):
            return bounds
        dates[name] = bounds
    hold = filter_.get("hold")
    if hold is not None and not isinstance(hold, bool):
        return "filter.hold must be true or false"
    shipment_types = filter_.get("shipmentTypes")
    if shipment_types is not None and (not isinstance(shipment_types, list)
                                       or any(t not in SHIPMENT_TYPES for t in shipment_types)):
        return f"filter.shipmentTypes must be a list of {', '.join(SHIPMENT_TYPES)}"
    location = filter_.get("locationId")
    if location is not None and not isinstance(location, str):
        return "filter.locationId must be a string"
    pagination = body.get("pagination") or {}
    size = pagination.get("pageSize", MAX_PAGE_SIZE) if isinstance(pagination, dict) else None
    if not _whole(size) or not 1 <= size <= MAX_PAGE_SIZE:
        return f"pagination.pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}"
    sort = body.get("sort") or {}
    if not isinstance(sort, dict) or sort.get("field", "orderDate") not in SORT_FIELDS \
            or sort.get("order", "asc") not in ("asc", "desc"):
        return f"sort.field must be one of {', '.join(SORT_FIELDS)} and sort.order asc or desc"
    return {"type": filter_["type"], "states": states, "cancellationType": cancellation_type, "dates": dates,
            "hold": hold, "shipmentTypes": shipment_types, "locationId": location or None,
            "size": size, "desc": sort.get("order") == "desc"}


def _within(instant: float | None, bounds: list[float | None] | None) -> bool:
    if bounds is None:
        return True
    if instant is None:
        return False
    start, end = bounds
    return (start is None or instant >= start) and (end is None or instant < end)


def _matches(order: SandboxOrder, query: dict[str, Any], location: str, now: float) -> bool:
    state = _shipment_state(order)
    if state["approved_at"] > now:
        return False  # not approved yet: see _visible
    dates = query["dates"]
    if not (_within(order.created, dates["orderDate"]) and _within(state["dispatch_after"], dates["dispatchAfterDate"])
            and _within(state["dispatch_by"], dates["dispatchByDate"]) and _within(state["updated"], dates["modifiedDate"])):
        return False
    if query["locationId"] is not None and query["locationId"] != location:
        return False
    if query["shipmentTypes"] and "NORMAL" not in query["shipmentTypes"]:
        return False  # every sandbox shipment is NORMAL
    if query["type"] == "cancelled":
        kind = CANCELLATION_TYPES[query["cancellationType"]]
        return "CANCELLED" in query["states"] and any(
            line.cancelled and line.cancel_type == kind and _within(line.cancelled_at, dates["cancellationDate"])
            for line in order.lines)
    if query["type"] == "preDispatch":
        # "hold: Filter shipments based on the hold status. Defaults to False. (Applicable only for
        # the type - preDispatch)" ([DOCS] order-api-docs/v3/PostShipmentSearch.html): a search that
        # names no hold gets no held shipment. UNCONFIRMED whether that default still holds: the SDK's
        # Filter (docs/Filter.md) has no hold at all; the channel option held_in_search serves held
        # shipments to such a search (with "hold": true on them), as an API without the filter might.
        if query["hold"] is None:
            if state["hold"] and not query["held_in_search"]:
                return False
        elif state["hold"] != query["hold"]:
            return False
        return "APPROVED" in query["states"] and any(not line.cancelled for line in order.lines)
    return False  # nothing is ever dispatched in the sandbox


def _sort_key(order: SandboxOrder) -> tuple[float, str]:
    return order.created, order.shipment_id


def _number(text: str) -> Any:
    """A price as a JSON number; a price the order book holds that is not a number stays text."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        return text
    return float(value) if value.is_finite() else text


def _shipment(channel: str, order: SandboxOrder, location: str) -> dict[str, Any]:
    # [SDK] docs/Shipment.md: dispatchByDate, dispatchAfterDate, updatedAt, locationId, hold, mps,
    # packagingPolicy, subShipments, orderItems, forms, shipmentType.
    state = _shipment_state(order)
    return {"shipmentId": order.shipment_id, "dispatchByDate": _iso(state["dispatch_by"]),
            "dispatchAfterDate": _iso(state["dispatch_after"]), "updatedAt": _iso(state["updated"]),
            "locationId": location, "hold": state["hold"], "mps": False, "packagingPolicy": "DEFAULT",
            "subShipments": [], "shipmentType": "NORMAL", "orderItems": [_item(channel, order, line) for line in order.lines]}


def _item(channel: str, order: SandboxOrder, line: SandboxLine) -> dict[str, Any]:
    # [SDK] docs/OrderItem.md and docs/PriceComponent.md; each item has its own status, so one
    # item of a shipment can be CANCELLED while the others stay APPROVED.
    price = _number(line.price)
    product_id = fsn(channel, line.sku)
    item: dict[str, Any] = {
        "orderItemId": line.line_id, "orderId": order.order_id, "orderDate": _iso(order.created),
        "status": "CANCELLED" if line.cancelled else "APPROVED", "paymentType": "PREPAID",
        "quantity": line.quantity, "sku": line.sku, "fsn": product_id, "listingId": "LST" + product_id,
        "priceComponents": {"sellingPrice": price, "totalPrice": price, "shippingCharge": 0,
                            "customerPrice": price, "flipkartDiscount": 0},
        "cancellationGroupId": None, "cancellationDate": None, "cancellationReason": None,
        "cancellationSubReason": None,
    }
    if line.cancelled:
        at = line.cancelled_at or order.updated
        # Lines cancelled in one go share a group, as Flipkart's cancellationGroupId groups them.
        item.update(cancellationGroupId=f"CG-{order.shipment_id}-{int(at * 1000)}", cancellationDate=_iso(at),
                    cancellationReason=line.cancel_reason)
    return item


def _address(address: SandboxAddress, pincode_key: str, landmark: str | None) -> dict[str, Any]:
    # [SDK] docs/Address.md: firstName, lastName, pinCode, city, state, stateCode, addressLine1,
    # addressLine2, landmark, contactNumber. "Buyer contact number and email address would be
    # provided only for self-ship shipments" ([SDK] docs/ShipmentV3Api.md, getShipmentDetails): the
    # sandbox's shipments are NORMAL, so no contactNumber.
    return {"firstName": address.first_name, "lastName": address.last_name, pincode_key: address.zip_code,
            "city": address.city, "state": address.state, "stateCode": STATE_CODES.get(address.state),
            "addressLine1": address.line1, "addressLine2": address.line2, "landmark": landmark,
            "contactNumber": None}


# -- listings -----------------------------------------------------------------------------------


def _sum_up(listing: dict[str, Any]) -> None:
    """The listing's summary, for the sandbox's state: on sale at some location; its stock at all."""
    places = listing["locations"].values()
    listing["ranged"] = any(place["status"] == "ENABLED" for place in places)
    listing["quantity"] = sum(place["inventory"] for place in places)


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
        if not isinstance(location, dict) or location.get("id") not in listing["locations"]:
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
