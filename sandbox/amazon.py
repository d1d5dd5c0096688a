"""Amazon SP-API as documented: Login with Amazon tokens, Listings Items (get, patch, search by SKU),
JSON_LISTINGS_FEED feeds and Orders v2026-01-01 searchOrders, each operation under its documented quota.

For convenience, a SKU the sandbox has never seen is created when it is first read (getListingsItem
or searchListingsItems) with productType "PRODUCT", so tests and demos need no catalogue set-up.
A listing whose state says `"deleted": true` answers 404, as a deleted listing would. A feed is
applied once the channel's `feed_processing_s` has passed after createFeed (0: at once), and
getFeed says IN_PROGRESS until then; an unreadable document ends FATAL with a processing report
that says why, and `feed_fatal` makes every feed end FATAL with nothing applied and no report. Pre-signed upload and download URLs live under `/amazon/_uploads`
and `/amazon/_downloads` and, like S3's, need no token.

searchOrders serves the sandbox's order book (`POST /_sandbox/orders`, `/_sandbox/cancellations`,
`/_sandbox/cancellation-requests`): Amazon.in orders, merchant-fulfilled unless created with
`fulfilled_by: AMAZON`, UNSHIPPED (or created SHIPPED) until every line is cancelled (CANCELLED).
Each data set (buyer, recipient, proceeds, fulfillment, an item's proceeds, fulfillment and
cancellation) is in the answer only when `includedData` asks for it; a cancelled order has no
recipient and no proceeds. A line's price in the book is its total; Amazon's
`product.price.unitPrice` is that / quantity. The channel setting `cancelled_quantity_zero`
reports cancelled items with quantityOrdered 0 and no price, as Orders v0 did.
Pagination tokens are kept by the sandbox for 24 hours and resume after the last order served.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
import secrets
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.core import ChannelBehaviour, SandboxCore, json_response
from sandbox.orders import SandboxLine, SandboxOrder

QUOTAS: dict[str, tuple[float, float]] = {
    "getListingsItem": (5, 10),
    "patchListingsItem": (5, 5),
    "searchListingsItems": (5, 5),
    "createFeedDocument": (0.5, 15),
    "createFeed": (0.0083, 15),
    "getFeed": (2, 15),
    "getFeedDocument": (0.0222, 10),
    "searchOrders": (0.0056, 20),
}
INCLUDED_DATA = {"summaries", "attributes", "issues", "offers", "fulfillmentAvailability", "procurement",
                 "relationships", "productTypes"}
MAX_FEED_MESSAGES = 25_000
# The sandbox's issue code for a value it rejects (Amazon's codes are not all published).
ISSUE_CODE = "90220"
ITEMS = "/amazon/listings/2021-08-01/items/<seller_id>"

# Orders v2026-01-01 (orders_2026-01-01.json, searchOrders).
INDIA = "A21TJRUUN4KGV"
FULFILLMENT_STATUSES = {"PENDING_AVAILABILITY", "PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED",
                        "UNFULFILLABLE"}
FULFILLED_BY = {"MERCHANT", "AMAZON"}
ORDER_INCLUDED_DATA = {"BUYER", "RECIPIENT", "PROCEEDS", "EXPENSE", "PROMOTION", "CANCELLATION", "FULFILLMENT",
                       "PACKAGES", "TAX", "PAYMENT", "FULFILLMENT_ORDERS"}
MAX_MARKETPLACE_IDS = 50
# The parameters a paginationToken may come with changed (all others must be as before).
PAGE_FREE_PARAMETERS = {"maxResultsPerPage", "includedData", "paginationToken"}
PAGE_TOKEN_TTL_S = 24 * 3600.0
# Who cancelled, by the order book's cancellation type (ItemCancellationExecution.cancelledBy).
CANCELLED_BY = {"buyer_cancellation": "BUYER", "seller_cancellation": "MERCHANT", "marketplace_cancellation": "AMAZON"}

Handler = Callable[[str, ChannelBehaviour], tuple[Response, Any]]


def spapi_error(status: int, code: str, message: str, details: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
    """SP-API's ErrorList body."""
    entry = {"code": code, "message": message, **({"details": details} if details else {})}
    return json_response({"errors": [entry]}, status, headers)


class Amazon:
    marketplace = "amazon"
    quotas = QUOTAS

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}  # feedDocumentId -> channel, content, compressed
        self.feeds: dict[str, dict[str, Any]] = {}  # feedId -> channel, Feed fields, ready_at
        self._feed_ids = itertools.count(50_000_000_001)
        # searchOrders paginationToken -> channel, parameters, window end, last (time, order id), expiry
        self.order_pages: dict[str, dict[str, Any]] = {}

    def rules(self) -> list[Rule]:
        return [
            Rule("/amazon/auth/o2/token", endpoint="token", methods=["POST"]),
            Rule(ITEMS + "/<path:sku>", endpoint="get_item", methods=["GET"]),
            Rule(ITEMS + "/<path:sku>", endpoint="patch_item", methods=["PATCH"]),
            Rule(ITEMS, endpoint="search_items", methods=["GET"]),
            Rule("/amazon/feeds/2021-06-30/documents", endpoint="create_feed_document", methods=["POST"]),
            Rule("/amazon/feeds/2021-06-30/documents/<document_id>", endpoint="get_feed_document", methods=["GET"]),
            Rule("/amazon/feeds/2021-06-30/feeds", endpoint="create_feed", methods=["POST"]),
            Rule("/amazon/feeds/2021-06-30/feeds/<feed_id>", endpoint="get_feed", methods=["GET"]),
            Rule("/amazon/orders/2026-01-01/orders", endpoint="search_orders", methods=["GET"]),
            Rule("/amazon/_uploads/<document_id>", endpoint="upload", methods=["PUT"]),
            Rule("/amazon/_downloads/<document_id>", endpoint="download", methods=["GET"]),
        ]

    # -- Login with Amazon ----------------------------------------------------------------------

    def on_token(self, request: Request, core: SandboxCore) -> Response:
        form = request.form
        channel = ""
        if form.get("grant_type") != "refresh_token":
            response = _lwa_error("unsupported_grant_type", "grant_type must be refresh_token")
        elif not all(form.get(k) for k in ("refresh_token", "client_id", "client_secret")):
            response = _lwa_error("invalid_request", "refresh_token, client_id and client_secret are required")
        else:
            found = core.find_channel(self.marketplace, client_id=form["client_id"], token=form["refresh_token"],
                                      client_secret=form["client_secret"])
            if found is None:
                response = _lwa_error("invalid_grant", "The request has an invalid grant parameter : refresh_token")
            else:
                channel, behaviour = found
                if behaviour.delay_s:
                    time.sleep(behaviour.delay_s)
                # LWA's expires_in is whole seconds.
                response = json_response({"access_token": core.issue_token(channel, behaviour.token_ttl_s),
                                          "token_type": "bearer", "expires_in": math.ceil(behaviour.token_ttl_s)})
        # Never record the form: it holds the channel's secrets.
        core.record(request, self.marketplace, channel, response.status_code, "lwaToken")
        return response

    # -- Listings Items ---------------------------------------------------------------------------

    def on_get_item(self, request: Request, core: SandboxCore, seller_id: str, sku: str) -> Response:
        return self._serve(request, core, "getListingsItem",
                           lambda channel, _: self._get_item(request, core, channel, sku))

    def on_patch_item(self, request: Request, core: SandboxCore, seller_id: str, sku: str) -> Response:
        return self._serve(request, core, "patchListingsItem",
                           lambda channel, _: self._patch_item(request, core, channel, sku))

    def on_search_items(self, request: Request, core: SandboxCore, seller_id: str) -> Response:
        return self._serve(request, core, "searchListingsItems",
                           lambda channel, _: self._search(request, core, channel))

    def _get_item(self, request: Request, core: SandboxCore, channel: str, sku: str) -> tuple[Response, Any]:
        marketplace_id, included, problem = _read_args(request)
        if problem:
            return problem, None
        with core.lock:
            listing = core.listing(channel, sku)
            if listing.get("deleted"):
                return spapi_error(404, "NOT_FOUND", f"SKU '{sku}' not found in marketplace {marketplace_id}"), None
            listing.setdefault("product_type", "PRODUCT")
            return json_response(_item(sku, listing, marketplace_id, included)), None

    def _search(self, request: Request, core: SandboxCore, channel: str) -> tuple[Response, Any]:
        marketplace_id, included, problem = _read_args(request)
        if problem:
            return problem, None
        skus = [s for s in request.args.get("identifiers", "").split(",") if s]
        if not skus or request.args.get("identifiersType") != "SKU":
            problem = "the sandbox searches by identifiers with identifiersType=SKU only"
            return spapi_error(400, "InvalidInput", problem), None
        if len(skus) > 20:
            return spapi_error(400, "InvalidInput", "identifiers takes at most 20 values"), None
        try:
            page_size, offset = int(request.args.get("pageSize", 10)), int(request.args.get("pageToken", 0))
        except ValueError:
            return spapi_error(400, "InvalidInput", "pageSize and pageToken must be whole numbers"), None
        if not 1 <= page_size <= 20:
            return spapi_error(400, "InvalidInput", "pageSize must be between 1 and 20"), None
        with core.lock:
            found = []
            for sku in dict.fromkeys(skus):
                listing = core.listing(channel, sku)
                if not listing.get("deleted"):
                    listing.setdefault("product_type", "PRODUCT")
                    found.append(_item(sku, listing, marketplace_id, included))
        answer: dict[str, Any] = {"numberOfResults": len(found), "items": found[offset:offset + page_size]}
        if offset + page_size < len(found):
            answer["pagination"] = {"nextToken": str(offset + page_size)}
        return json_response(answer), None

    def _patch_item(self, request: Request, core: SandboxCore, channel: str, sku: str) -> tuple[Response, Any]:
        body, recorded = _json_body(request)
        if not request.args.get("marketplaceIds"):
            return spapi_error(400, "InvalidInput", "Missing required parameter marketplaceIds"), recorded
        if not isinstance(body, dict):
            return spapi_error(400, "InvalidInput", "The request body must be a JSON object"), recorded
        problem = _request_problem(body.get("productType"), body.get("patches"))
        if problem:
            return spapi_error(400, "InvalidInput", problem), recorded
        with core.lock:
            listing = core.listing(channel, sku)
            if listing.get("deleted"):
                return spapi_error(404, "NOT_FOUND", f"SKU '{sku}' not found"), recorded
            issues, changes = _evaluate(body["patches"], listing)
            if issues:
                status = "INVALID"
            elif request.args.get("mode") == "VALIDATION_PREVIEW":
                status = "VALID"
            else:
                _apply(listing, body["productType"], changes)
                status = "ACCEPTED"
        answer = {"sku": sku, "status": status, "submissionId": uuid.uuid4().hex, "issues": issues}
        return json_response(answer), recorded

    # -- Feeds ------------------------------------------------------------------------------------

    def on_create_feed_document(self, request: Request, core: SandboxCore) -> Response:
        return self._serve(request, core, "createFeedDocument",
                           lambda channel, _: self._create_document(request, channel))

    def on_create_feed(self, request: Request, core: SandboxCore) -> Response:
        return self._serve(request, core, "createFeed", lambda channel, _: self._create_feed(request, core, channel))

    def on_get_feed(self, request: Request, core: SandboxCore, feed_id: str) -> Response:
        return self._serve(request, core, "getFeed", lambda channel, _: (self._feed(core, channel, feed_id), None))

    def on_get_feed_document(self, request: Request, core: SandboxCore, document_id: str) -> Response:
        return self._serve(request, core, "getFeedDocument",
                           lambda channel, _: (self._document(request, channel, document_id), None))

    def on_upload(self, request: Request, core: SandboxCore, document_id: str) -> Response:
        with core.lock:
            document = self.documents.get(document_id)
            # Only input documents take uploads; S3 answers a bad pre-signed URL with 403.
            accepted = document is not None and not document["compressed"]
            # The pre-signed URL is signed for the contentType given to createFeedDocument: S3
            # refuses an upload with another Content-Type (403 SignatureDoesNotMatch). Source:
            # "Feeds API v2021-06-30 use case guide", step 2 "Upload the feed data"
            # (https://developer-docs.amazon.com/sp-api/docs/feeds-api-v2021-06-30-use-case-guide).
            if accepted and request.headers.get("Content-Type") != document.get("content_type"):
                accepted = False
            if accepted:
                document["content"] = request.get_data()
        response = Response(status=200 if accepted else 403)
        core.record(request, self.marketplace, document["channel"] if document else "", response.status_code,
                    "uploadFeedDocument")
        return response

    def on_download(self, request: Request, core: SandboxCore, document_id: str) -> Response:
        with core.lock:
            document = self.documents.get(document_id)
        if document is None or document["content"] is None:
            response = Response(status=403)
        else:
            # Served as stored bytes, with no Content-Encoding: the client gunzips, as with S3.
            response = Response(document["content"], mimetype="application/octet-stream")
        core.record(request, self.marketplace, document["channel"] if document else "", response.status_code,
                    "downloadFeedDocument")
        return response

    def _create_document(self, request: Request, channel: str) -> tuple[Response, Any]:
        body, recorded = _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("contentType"), str) or not body["contentType"]:
            return spapi_error(400, "InvalidInput", "contentType is required"), recorded
        document_id = f"amzn1.tortuga.sandbox.{uuid.uuid4().hex}"
        self.documents[document_id] = {"channel": channel, "content": None, "compressed": False,
                                       "content_type": body["contentType"]}
        url = f"{request.host_url}amazon/_uploads/{document_id}"
        return json_response({"feedDocumentId": document_id, "url": url}, 201), recorded

    def _create_feed(self, request: Request, core: SandboxCore, channel: str) -> tuple[Response, Any]:
        body, _ = _json_body(request)
        if not isinstance(body, dict):
            return spapi_error(400, "InvalidInput", "The request body must be a JSON object"), None
        marketplaces = body.get("marketplaceIds")
        document = self.documents.get(str(body.get("inputFeedDocumentId")))
        if body.get("feedType") != "JSON_LISTINGS_FEED":
            return spapi_error(400, "InvalidInput", "the sandbox processes feedType JSON_LISTINGS_FEED only"), None
        if not isinstance(marketplaces, list) or not 1 <= len(marketplaces) <= 25:
            return spapi_error(400, "InvalidInput", "marketplaceIds must list 1 to 25 marketplaces"), None
        if document is None or document["channel"] != channel or document["content"] is None:
            return spapi_error(400, "InvalidInput", "inputFeedDocumentId names no uploaded feed document"), None
        try:
            text = document["content"].decode("utf-8")
            parsed, recorded = json.loads(text, parse_float=Decimal), json.loads(text)
        except ValueError:
            parsed = recorded = None
        feed_id = str(next(self._feed_ids))
        now = time.time()
        behaviour = core.channels[channel]
        with core.lock:
            # Processed when its processing time has passed (on the next request to the sandbox),
            # not on createFeed: until then Amazon holds the old values. Feeds take minutes
            # ("Feeds API v2021-06-30 use case guide": poll getFeed until DONE, FATAL or CANCELLED).
            self.feeds[feed_id] = {
                "channel": channel, "ready_at": now + behaviour.feed_processing_s, "document": parsed,
                "marketplace": str(marketplaces[0]), "processed": False, "fatal": False,
                "inject_fatal": behaviour.feed_fatal,
                "feed": {"feedId": feed_id, "feedType": "JSON_LISTINGS_FEED", "marketplaceIds": marketplaces,
                         "createdTime": _iso(now)},
            }
        self.process_due(core)
        # The call log keeps the document itself, so a test can see every value pushed.
        return json_response({"feedId": feed_id}, 202), recorded

    def process_due(self, core: SandboxCore) -> None:
        """Process every feed whose time has come, in the order they were created."""
        now = time.time()
        with core.lock:
            for feed_id, feed in sorted(self.feeds.items(), key=lambda kv: int(kv[0])):
                if feed["processed"] or feed["ready_at"] > now:
                    continue
                feed["processed"] = True
                if feed["inject_fatal"]:
                    # Amazon aborted the feed (an internal failure): FATAL, nothing applied here,
                    # and no processing report. Feed.resultFeedDocumentId is optional and FATAL means
                    # "some, none, or all of the operations ... may have completed"
                    # (feeds_2021-06-30.json, Feed). UNCONFIRMED: when Amazon writes no report.
                    feed["fatal"] = True
                    continue
                report, fatal = self._process(core, feed["channel"], feed_id, feed["document"], feed["marketplace"])
                report_id = f"amzn1.tortuga.sandbox.{uuid.uuid4().hex}"
                self.documents[report_id] = {"channel": feed["channel"], "compressed": True,
                                             "content": gzip.compress(json.dumps(report).encode())}
                feed["fatal"] = fatal
                feed["feed"]["resultFeedDocumentId"] = report_id

    def _process(self, core: SandboxCore, channel: str, feed_id: str, document: Any,
                 marketplace_id: str) -> tuple[dict[str, Any], bool]:
        """Apply each message like a PATCH; the processing report (listings-feed-processing-report
        v2) and whether the feed as a whole was FATAL."""
        header = document.get("header") if isinstance(document, dict) else None
        messages = document.get("messages") if isinstance(document, dict) else None
        seller = header.get("sellerId") if isinstance(header, dict) else None
        report_header = {"sellerId": str(seller or channel), "version": "2.0", "feedId": feed_id}
        if (not isinstance(header, dict) or header.get("version") != "2.0" or not isinstance(seller, str)
                or not isinstance(messages, list) or not 1 <= len(messages) <= MAX_FEED_MESSAGES):
            issue = {"severity": "ERROR", "code": "4000001",
                     "message": "The feed is not a valid JSON_LISTINGS_FEED v2 document (header, 1 to 25,000 messages)"}
            summary = {"errors": 1, "warnings": 0, "messagesProcessed": 0, "messagesAccepted": 0, "messagesInvalid": 0}
            return {"header": report_header, "issues": [issue], "summary": summary}, True
        issues: list[dict[str, Any]] = []
        accepted = 0
        for index, message in enumerate(messages, start=1):
            found = self._process_message(core, channel, message)
            if not found:
                accepted += 1
                continue
            message_id = message.get("messageId") if isinstance(message, dict) else None
            sku = message.get("sku") if isinstance(message, dict) else None
            for issue in found:
                entry = {"messageId": message_id if isinstance(message_id, int) else index,
                         "code": issue["code"], "severity": "ERROR", "message": issue["message"]}
                if isinstance(sku, str) and sku:
                    entry["sku"] = sku
                if issue.get("attributeNames"):
                    entry["attributeName"] = issue["attributeNames"][0]
                issues.append(entry)
        summary = {"errors": len(issues), "warnings": 0, "messagesProcessed": len(messages),
                   "messagesAccepted": accepted, "messagesInvalid": len(messages) - accepted}
        return {"header": report_header, "issues": issues, "summary": summary}, False

    def _process_message(self, core: SandboxCore, channel: str, message: Any) -> list[dict[str, Any]]:
        if not isinstance(message, dict) or not isinstance(message.get("messageId"), int):
            return [_issue("INVALID_ATTRIBUTE", "A message needs an integer messageId")]
        sku = message.get("sku")
        if not isinstance(sku, str) or not sku:
            return [_issue("INVALID_ATTRIBUTE", "A message needs a sku")]
        if message.get("operationType") != "PATCH":
            return [_issue("INVALID_ATTRIBUTE", "the sandbox processes operationType PATCH only")]
        problem = _request_problem(message.get("productType"), message.get("patches"))
        if problem:
            return [_issue("INVALID_ATTRIBUTE", problem)]
        with core.lock:
            listing = core.listing(channel, sku)
            if listing.get("deleted"):
                return [_issue("INVALID_ATTRIBUTE", f"SKU '{sku}' not found")]
            issues, changes = _evaluate(message["patches"], listing)
            if not issues:
                _apply(listing, message["productType"], changes)
        return issues

    def _feed(self, core: SandboxCore, channel: str, feed_id: str) -> Response:
        self.process_due(core)
        feed = self.feeds.get(feed_id)
        if feed is None or feed["channel"] != channel:
            return spapi_error(404, "NOT_FOUND", f"Feed {feed_id} not found")
        answer = dict(feed["feed"])
        if not feed["processed"]:
            answer.update(processingStatus="IN_PROGRESS", processingStartTime=answer["createdTime"])
        else:
            # A FATAL feed of an unreadable document has a processing report that says why. The
            # model makes Feed.resultFeedDocumentId optional and gives no FATAL example
            # (feeds_2021-06-30.json); Amazon's use case guide says to read the report of a FATAL
            # feed for its errors. UNCONFIRMED: that every FATAL feed has one (see feed_fatal).
            answer.update(processingStatus="FATAL" if feed["fatal"] else "DONE",
                          processingStartTime=answer["createdTime"], processingEndTime=_iso(feed["ready_at"]))
        return json_response(answer)

    def _document(self, request: Request, channel: str, document_id: str) -> Response:
        document = self.documents.get(document_id)
        if document is None or document["channel"] != channel:
            return spapi_error(404, "NOT_FOUND", f"Feed document {document_id} not found")
        answer = {"feedDocumentId": document_id, "url": f"{request.host_url}amazon/_downloads/{document_id}"}
        if document["compressed"]:
            answer["compressionAlgorithm"] = "GZIP"
        return json_response(answer)

    # -- Orders v2026-01-01 ------------------------------------------------------------------------

    def on_search_orders(self, request: Request, core: SandboxCore) -> Response:
        return self._serve(request, core, "searchOrders",
                           lambda channel, behaviour: (self._search_orders(request, core, channel, behaviour), None))

    def _search_orders(self, request: Request, core: SandboxCore, channel: str, behaviour: ChannelBehaviour) -> Response:
        args, now = request.args, time.time()
        fixed = tuple(sorted((k, v) for k, v in args.items(multi=True) if k not in PAGE_FREE_PARAMETERS))
        token = args.get("paginationToken")
        resume = None
        if token is not None:
            with core.lock:
                resume = self.order_pages.get(token)
            if resume is None or resume["channel"] != channel or resume["expires"] < now:
                return spapi_error(400, "InvalidInput", "Invalid paginationToken: it is unknown or has expired")
            if resume["parameters"] != fixed:
                return spapi_error(400, "InvalidInput", "A paginationToken must come with the same parameters as the "
                                                        "request that returned it; only maxResultsPerPage and "
                                                        "includedData may change")
        query = _order_query(args, now, behaviour.order_lag_s)
        if isinstance(query, str):
            return spapi_error(400, "InvalidInput", query)
        by, after, before, statuses, fulfilled_by, india, size, included = query
        if resume is not None:
            before = resume["before"]  # a defaulted end stays the first page's
        field = "created" if by == "createdBefore" else "updated"
        with core.orders.lock:
            # Every sandbox order is an Amazon.in order; fulfilledBy and fulfillmentStatuses filter
            # (orders_2026-01-01.json, searchOrders parameters fulfilledBy, fulfillmentStatuses).
            chosen = sorted(((getattr(o, field), o.order_id), o) for o in core.orders.for_channel(channel)
                            if after <= getattr(o, field) <= before and india and o.status in statuses
                            and o.fulfilled_by in fulfilled_by)
            if resume is not None:
                chosen = [(key, o) for key, o in chosen if key > tuple(resume["after"])]
            answer: dict[str, Any] = {"orders": [_order(o, included, behaviour.cancelled_quantity_zero)
                                                 for _, o in chosen[:size]]}
        if len(chosen) > size:
            next_token = secrets.token_urlsafe(24)
            with core.lock:
                self.order_pages = {k: v for k, v in self.order_pages.items() if v["expires"] >= now}
                self.order_pages[next_token] = {"channel": channel, "parameters": fixed, "before": before,
                                                "after": chosen[size - 1][0], "expires": now + PAGE_TOKEN_TTL_S}
            answer["pagination"] = {"nextToken": next_token}
        answer[by] = _iso(before)
        return json_response(answer)

    # -- every SP-API operation: token, admission, record -----------------------------------------

    def _serve(self, request: Request, core: SandboxCore, operation: str, handle: Handler) -> Response:
        token = request.headers.get("x-amz-access-token", "")
        channel = core.channel_for_token(token) if token else None
        behaviour = core.channel(self.marketplace, channel) if channel else None
        recorded = None
        if behaviour is None:
            details = ("Access token is missing in the request header." if not token
                       else "The access token you provided is revoked, malformed or invalid.")
            response = spapi_error(403, "Unauthorized", "Access to requested resource is denied.", details)
            with core.lock:  # log the refusal under the channel the token was issued to, if any
                channel = core.tokens.get(token, ("",))[0]
        else:
            refusal = core.admit(behaviour, channel, operation)
            if refusal is not None:
                response = _as_error_list(refusal)
            else:
                response, recorded = handle(channel, behaviour)
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        core.record(request, self.marketplace, channel, response.status_code, operation, recorded)
        return response


# -- validation and state ----------------------------------------------------------------------


def _read_args(request: Request) -> tuple[str, list[str], Response | None]:
    marketplace_id = request.args.get("marketplaceIds", "").split(",")[0]
    included = [s for s in request.args.get("includedData", "summaries").split(",") if s]
    if not marketplace_id:
        return "", included, spapi_error(400, "InvalidInput", "Missing required parameter marketplaceIds")
    unknown = set(included) - INCLUDED_DATA
    if unknown:
        problem = spapi_error(400, "InvalidInput", f"Unknown includedData: {', '.join(sorted(unknown))}")
        return marketplace_id, included, problem
    return marketplace_id, included, None


def _json_body(request: Request) -> tuple[Any, Any]:
    """The body with exact Decimal money (to apply), and with plain floats (for the call log)."""
    raw = request.get_data()
    try:
        return json.loads(raw, parse_float=Decimal), json.loads(raw)
    except ValueError:
        return None, None


def _request_problem(product_type: Any, patches: Any) -> str | None:
    if not isinstance(product_type, str) or not product_type:
        return "productType is required"
    if not isinstance(patches, list) or not patches:
        return "patches must list at least one JSON Patch operation"
    for patch in patches:
        if not isinstance(patch, dict) or patch.get("op") not in ("add", "replace", "merge", "delete"):
            return "each patch needs op add, replace, merge or delete"
        if not isinstance(patch.get("path"), str) or not patch["path"].startswith("/attributes/"):
            return "each patch needs a path /attributes/<name>"
        value = patch.get("value")
        if patch["op"] != "delete" and (not isinstance(value, list) or not all(isinstance(v, dict) for v in value)):
            return f"the value of {patch['path']} must be an array of objects"
    return None


# The attributes the sandbox models, each with its selectors: the sub-attributes that name one
# instance of a multi-instance attribute, which a `merge` or `delete` matches on ("Manage purchasable
# offer", https://developer-docs.amazon.com/sp-api/docs/manage-purchasable-offer: offers are keyed
# by marketplace_id, currency and audience, audience ALL when left out). fulfillment_availability is
# keyed by fulfillment_channel_code (DEFAULT: merchant-fulfilled). Other attributes are accepted as
# sent (Amazon checks them against the product type's JSON Schema, which the sandbox has not got).
SELECTORS = {
    "fulfillment_availability": ("fulfillment_channel_code",),
    "purchasable_offer": ("marketplace_id", "currency", "audience"),
    "list_price": ("marketplace_id", "currency"),
}
# Sub-attributes of purchasable_offer the sandbox knows (the tutorial above); any other is refused,
# as the product type schema's additionalProperties: false would. UNCONFIRMED: maximum_retail_price
# (India's MRP) as an offer sub-attribute; it is where Wheel sends the MRP by default.
OFFER_KEYS = {"marketplace_id", "currency", "audience", "our_price", "discounted_price", "maximum_retail_price",
              "minimum_seller_allowed_price", "maximum_seller_allowed_price", "start_at", "end_at",
              "quantity_discount_plan"}
SCHEDULED_PRICES = ("our_price", "discounted_price", "maximum_retail_price", "minimum_seller_allowed_price",
                    "maximum_seller_allowed_price")
FULFILLMENT_KEYS = {"fulfillment_channel_code", "quantity", "lead_time_to_ship_max_days", "restock_date",
                    "is_inventory_available"}


def _evaluate(patches: list[dict], listing: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The issues that make the submission INVALID; else the listing's attributes after the patches.

    Each operation acts as Listings Items documents it (PatchOperation.op in
    listingsItems_2021-08-01.json): `add`/`replace` set the whole attribute, `merge` changes only the
    sub-attributes sent in the instance its selectors name (adding one if none matches), `delete`
    removes the instances its selectors name.
    """
    attributes = {name: [dict(i) for i in value] for name, value in _attributes(listing).items()}
    issues: list[dict[str, Any]] = []
    for patch in patches:
        name = patch["path"].removeprefix("/attributes/")
        value = patch.get("value") or []
        if name in SELECTORS:
            issues += [_issue("INVALID_ATTRIBUTE", problem, name) for problem in _shape_problems(name, value)]
        if patch["op"] in ("add", "replace"):
            attributes[name] = [dict(v) for v in value]
        elif patch["op"] == "merge":
            attributes[name] = _merge(name, attributes.get(name, []), value)
        elif value:
            attributes[name] = [i for i in attributes.get(name, []) if not any(_same(name, i, v) for v in value)]
        else:
            attributes.pop(name, None)
    if issues:
        return issues, None
    derived = _derive(attributes)
    touched = {p["path"].removeprefix("/attributes/") for p in patches}
    selling, mrp = derived.get("selling_price"), derived.get("mrp")
    if touched & {"purchasable_offer", "list_price"} and selling is not None and mrp is not None and selling > mrp:
        # Amazon.in refuses a price above the MRP (UNCONFIRMED as a submission-time check).
        issues.append(_issue("INVALID_PRICE", f"The selling price ({selling}) is higher than the maximum retail "
                                              f"price ({mrp}).", "purchasable_offer"))
        return issues, None
    return [], attributes


def _shape_problems(name: str, value: list[dict]) -> list[str]:
    problems = []
    for instance in value:
        if name == "fulfillment_availability":
            unknown = set(instance) - FULFILLMENT_KEYS
            quantity = instance.get("quantity")
            if not isinstance(instance.get("fulfillment_channel_code"), str):
                problems.append("fulfillment_availability needs a fulfillment_channel_code")
            if "quantity" in instance and (isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0):
                problems.append(f"The quantity {quantity} is not a whole number >= 0.")
        elif name == "purchasable_offer":
            unknown = set(instance) - OFFER_KEYS
            if not isinstance(instance.get("marketplace_id"), str) or not isinstance(instance.get("currency"), str):
                problems.append("purchasable_offer needs marketplace_id and currency")
            for key in SCHEDULED_PRICES:
                if key in instance:
                    amount = _amount(instance[key], 0, "schedule", 0, "value_with_tax")
                    if amount is None or amount <= 0:
                        problems.append(f"The {key} value_with_tax must be a positive number "
                                        f"({key}: [{{schedule: [{{value_with_tax}}]}}]).")
        else:  # list_price
            unknown = set(instance) - {"marketplace_id", "currency", "value_with_tax", "value"}
            amount = _amount(instance, "value_with_tax")
            amount = _amount(instance, "value") if amount is None else amount
            if amount is None or amount <= 0:
                problems.append("The list_price value_with_tax must be a positive number.")
        if unknown:
            problems.append(f"{name} does not take {', '.join(sorted(unknown))}")
    return problems


def _same(name: str, a: dict, b: dict) -> bool:
    defaults = {"audience": "ALL"} if name == "purchasable_offer" else {}
    return all(a.get(k, defaults.get(k)) == b.get(k, defaults.get(k)) for k in SELECTORS.get(name, ()))


def _merge(name: str, current: list[dict], value: list[dict]) -> list[dict]:
    merged = [dict(i) for i in current]
    for instance in value:
        match = next((i for i in merged if _same(name, i, instance)), None)
        if match is None:
            merged.append(dict(instance))
        else:
            match.update(instance)  # the sub-attributes sent replace theirs; the others stay
    return merged


def _derive(attributes: dict[str, list[dict]]) -> dict[str, Any]:
    """Quantity and prices as the listing's attributes hold them."""
    out: dict[str, Any] = {}
    stock = next((i for i in attributes.get("fulfillment_availability", [])
                  if i.get("fulfillment_channel_code") == "DEFAULT" and "quantity" in i), None)
    if stock is not None:
        out["quantity"] = stock["quantity"]
    offer = next((i for i in attributes.get("purchasable_offer", []) if i.get("audience", "ALL") == "ALL"), None)
    selling = _amount(offer, "our_price", 0, "schedule", 0, "value_with_tax")
    mrp = _amount(offer, "maximum_retail_price", 0, "schedule", 0, "value_with_tax")
    listed = (attributes.get("list_price") or [None])[0]
    if mrp is None:
        mrp = _amount(listed, "value_with_tax")
    if mrp is None:
        mrp = _amount(listed, "value")
    if selling is not None:
        out["selling_price"] = selling
    if mrp is not None:
        out["mrp"] = mrp
    return out


def _attributes(listing: dict[str, Any]) -> dict[str, list[dict]]:
    """The listing's attributes; a listing a test set up by values alone gets them from those."""
    if "attributes" in listing:
        return listing["attributes"]
    attributes: dict[str, list[dict]] = {}
    if listing.get("quantity") is not None:
        attributes["fulfillment_availability"] = [{"fulfillment_channel_code": "DEFAULT", "quantity": listing["quantity"]}]
    if listing.get("selling_price") is not None:
        offer: dict[str, Any] = {"marketplace_id": INDIA, "currency": "INR", "audience": "ALL",
                                 "our_price": [{"schedule": [{"value_with_tax": Decimal(listing["selling_price"])}]}]}
        if listing.get("mrp") is not None:
            offer["maximum_retail_price"] = [{"schedule": [{"value_with_tax": Decimal(listing["mrp"])}]}]
        attributes["purchasable_offer"] = [offer]
    return attributes


def _apply(listing: dict[str, Any], product_type: str, attributes: dict[str, list[dict]]) -> None:
    listing["product_type"] = product_type
    listing["attributes"] = attributes
    derived = _derive(attributes)
    if "quantity" in derived:
        listing["quantity"] = derived["quantity"]
        listing["ranged"] = derived["quantity"] > 0
    for key in ("selling_price", "mrp"):
        if key in derived:
            listing[key] = f"{derived[key]:.2f}"


def _issue(category: str, message: str, attribute: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"code": ISSUE_CODE, "message": message, "severity": "ERROR", "categories": [category]}
    if attribute:
        issue["attributeNames"] = [attribute]
    return issue


def _amount(value: Any, *path: str | int) -> Decimal | None:
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, float)):
        return None
    return Decimal(str(value)) if Decimal(str(value)).is_finite() else None


def _item(sku: str, listing: dict[str, Any], marketplace_id: str, included: list[str]) -> dict[str, Any]:
    """A listings Item with the data sets asked for (money as JSON numbers)."""
    item: dict[str, Any] = {"sku": sku}
    quantity = listing.get("quantity")
    if "summaries" in included:
        stamp = _iso(time.time())
        item["summaries"] = [{
            "marketplaceId": marketplace_id, "productType": listing["product_type"], "conditionType": "new_new",
            "status": ["BUYABLE", "DISCOVERABLE"] if quantity else ["DISCOVERABLE"], "itemName": sku,
            "createdDate": stamp, "lastUpdatedDate": stamp,
        }]
    if "attributes" in included:
        item["attributes"] = json.loads(json.dumps(_attributes(listing), default=float))  # money as JSON numbers
    if "fulfillmentAvailability" in included:
        item["fulfillmentAvailability"] = (
            [{"fulfillmentChannelCode": "DEFAULT", "quantity": quantity}] if quantity is not None else [])
    return item


# -- orders ----------------------------------------------------------------------------------------

OrderQuery = tuple[str, float, float, set[str], set[str], bool, int, set[str]]


def _order_query(args: Any, now: float, lag_s: float) -> OrderQuery | str:
    """searchOrders' parameters checked as the model says: (the *Before field answered, after,
    before, statuses, fulfilledBy, whether India is asked for, page size, includedData); or the problem."""
    created, updated = args.get("createdAfter"), args.get("lastUpdatedAfter")
    if (created is None) == (updated is None):
        return "Exactly one of createdAfter and lastUpdatedAfter must be provided"
    if created is not None and args.get("lastUpdatedBefore") is not None:
        return "lastUpdatedBefore cannot be provided with createdAfter"
    if updated is not None and args.get("createdBefore") is not None:
        return "createdBefore cannot be provided with lastUpdatedAfter"
    after_name, before_name = ("createdAfter", "createdBefore") if created is not None else (
        "lastUpdatedAfter", "lastUpdatedBefore")
    after = _instant(args.get(after_name))
    if after is None:
        return f"{after_name} must be an ISO 8601 date-time"
    latest = now - lag_s
    before = latest if args.get(before_name) is None else _instant(args.get(before_name))
    if before is None:
        return f"{before_name} must be an ISO 8601 date-time"
    if before > latest:
        return f"{before_name} must be at least {lag_s:g} seconds before the time of the request"
    if before < after:
        return f"{before_name} must be equal to or after {after_name}"
    marketplaces = _list(args, "marketplaceIds")
    if len(marketplaces) > MAX_MARKETPLACE_IDS:
        return f"marketplaceIds takes at most {MAX_MARKETPLACE_IDS} values"
    statuses = set(_list(args, "fulfillmentStatuses")) or FULFILLMENT_STATUSES
    fulfilled_by = set(_list(args, "fulfilledBy")) or FULFILLED_BY
    included = set(_list(args, "includedData"))
    for name, given, allowed in (("fulfillmentStatuses", statuses, FULFILLMENT_STATUSES),
                                 ("fulfilledBy", fulfilled_by, FULFILLED_BY),
                                 ("includedData", included, ORDER_INCLUDED_DATA)):
        if given - allowed:
            return f"Invalid {name}: {', '.join(sorted(given - allowed))}"
    try:
        size = int(args.get("maxResultsPerPage", 100))
    except ValueError:
        size = 0
    if not 1 <= size <= 100:
        return "maxResultsPerPage must be between 1 and 100"
    # No fulfilledBy and no fulfillmentStatuses: no filter (every value of the enum).
    return before_name, after, before, statuses, fulfilled_by, not marketplaces or INDIA in marketplaces, size, included


def _list(args: Any, name: str) -> list[str]:
    """An array parameter: comma-separated (Swagger's csv), or repeated."""
    return [v for value in args.getlist(name) for v in value.split(",") if v]


def _instant(value: str | None) -> float | None:
    try:
        moment = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


# Where each data set goes, by includedData value: "Get orders with filtering criteria",
# https://developer-docs.amazon.com/sp-api/docs/get-orders-with-filtering-criteria (BUYER ->
# Order.buyer; RECIPIENT -> Order.recipient; FULFILLMENT -> Order.fulfillment and
# Order.orderItems.fulfillment; PROCEEDS -> Order.proceeds and Order.orderItems.proceeds;
# CANCELLATION -> Order.orderItems.cancellation). "If you do not include includedData, the response
# will include only basic information": orderId, times, salesChannel, items with their product.
# Every x-amzn-api-sandbox example of searchOrders and getOrder in orders_2026-01-01.json that
# answers `fulfillment` asks for FULFILLMENT.


def _order(order: SandboxOrder, included: set[str], cancelled_quantity_zero: bool = False) -> dict[str, Any]:
    """An Order as searchOrders answers it, with the data sets asked for (money as decimal strings)."""
    cancelled = order.status == "CANCELLED"
    # orders_2026-01-01.json#/definitions/Order: required orderId, createdTime, lastUpdatedTime,
    # salesChannel, orderItems.
    answer: dict[str, Any] = {
        "orderId": order.order_id, "createdTime": _iso(order.created), "lastUpdatedTime": _iso(order.updated),
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": INDIA, "marketplaceName": "Amazon.in"},
        "orderItems": [_order_item(line, included, cancelled_quantity_zero, order.status == "SHIPPED")
                       for line in order.lines],
    }
    ship_to = order.ship_to
    name = f"{ship_to.first_name} {ship_to.last_name}".strip()
    if "BUYER" in included:
        # orders_2026-01-01.json#/definitions/Buyer (buyerName).
        answer["buyer"] = {"buyerName": name}
    # UNCONFIRMED: that a CANCELLED order comes without recipient and proceeds. Neither the model
    # nor the use-case guide says; it rests on the shape of cancelled orders this project's unit
    # fixtures follow (tests/unit/test_amazon_orders.py) and on the rule that a client must not need
    # an address or money to cancel. Serving the harsher case keeps a client honest.
    if "RECIPIENT" in included and not cancelled:
        # orders_2026-01-01.json#/definitions/Recipient -> deliveryAddress (CustomerAddress).
        address = {"name": name, "addressLine1": ship_to.line1,
                   "addressLine2": ship_to.line2, "city": ship_to.city, "stateOrRegion": ship_to.state,
                   "postalCode": ship_to.zip_code, "countryCode": "IN", "addressType": "RESIDENTIAL"}
        answer["recipient"] = {"deliveryAddress": {k: v for k, v in address.items() if v}}
    if "PROCEEDS" in included and not cancelled:
        # orders_2026-01-01.json#/definitions/OrderProceeds (grandTotal: Money).
        answer["proceeds"] = {"grandTotal": _money(order.total)}
    if "FULFILLMENT" in included:
        # orders_2026-01-01.json#/definitions/OrderFulfillment: fulfillmentStatus (required), fulfilledBy.
        answer["fulfillment"] = {"fulfillmentStatus": order.status, "fulfilledBy": order.fulfilled_by}
    return answer


def _order_item(line: SandboxLine, included: set[str], cancelled_quantity_zero: bool = False,
                shipped: bool = False) -> dict[str, Any]:
    unit = Decimal(line.price) / (line.quantity or 1)
    # orders_2026-01-01.json#/definitions/OrderItem: required orderItemId, quantityOrdered, product.
    item: dict[str, Any] = {
        "orderItemId": line.line_id, "quantityOrdered": line.quantity,
        "product": {"asin": "B0" + hashlib.sha1(line.sku.encode()).hexdigest()[:8].upper(), "sellerSku": line.sku,
                    "price": {"unitPrice": _money(unit)}},
    }
    if line.cancelled and cancelled_quantity_zero:
        # UNCONFIRMED for v2026-01-01: the model does not say what quantityOrdered and unitPrice of a
        # cancelled item become. Orders v0 reported QuantityOrdered 0 and no ItemPrice for cancelled
        # items; this switch serves that shape, so a client is tested against both.
        item["quantityOrdered"] = 0
        del item["product"]["price"]
    if "PROCEEDS" in included and not line.cancelled:
        # orders_2026-01-01.json#/definitions/ItemProceeds (proceedsTotal). UNCONFIRMED: that a
        # cancelled item has none (nothing is charged for it).
        item["proceeds"] = {"proceedsTotal": _money(Decimal(line.price))}
    if "FULFILLMENT" in included:
        # orders_2026-01-01.json#/definitions/ItemFulfillment (quantityFulfilled, quantityUnfulfilled).
        done = line.quantity if shipped and not line.cancelled else 0
        item["fulfillment"] = {"quantityFulfilled": done,
                               "quantityUnfulfilled": 0 if line.cancelled else line.quantity - done}
    if "CANCELLATION" in included and (line.cancelled or line.request_reason):
        # orders_2026-01-01.json#/definitions/ItemCancellation: cancellationRequest (requester BUYER,
        # cancelReason) is the buyer asking; cancellationExecution (cancelledBy BUYER | MERCHANT |
        # AMAZON, cancelReason) is the cancellation done. The model's searchOrders example has both
        # on an item a buyer asked to cancel and the merchant then cancelled.
        cancellation: dict[str, Any] = {}
        by = CANCELLED_BY.get(line.cancel_type or "", "AMAZON") if line.cancelled else None
        if line.request_reason or by == "BUYER":
            cancellation["cancellationRequest"] = {"requester": "BUYER",
                                                   "cancelReason": line.request_reason or line.cancel_reason or ""}
        if line.cancelled:
            cancellation["cancellationExecution"] = {"cancelledBy": by, "cancelReason": line.cancel_reason or ""}
        item["cancellation"] = cancellation
    return item


def _money(amount: Decimal) -> dict[str, str]:
    return {"amount": str(amount), "currencyCode": "INR"}


def _lwa_error(code: str, description: str) -> Response:
    return json_response({"error": code, "error_description": description}, 400)


def _as_error_list(refusal: Response) -> Response:
    """The core's refusal (latency, faults, 429) in SP-API's ErrorList shape.

    SP-API's 429 carries no Retry-After: a caller learns its limit from the usage plan, and from
    `x-amzn-RateLimit-Limit` "when available" ("Usage Plans and Rate Limits in the Selling Partner
    API", https://developer-docs.amazon.com/sp-api/docs/usage-plans-and-rate-limits, which
    documents no Retry-After); every 429 in listingsItems_2021-08-01.json, feeds_2021-06-30.json
    and orders_2026-01-01.json declares only the `x-amzn-RequestId` header
    (tests/reference/amazon-sp-api/).
    """
    try:
        body = json.loads(refusal.get_data())
    except ValueError:
        body = {}
    return spapi_error(refusal.status_code, str(body.get("code", "InternalFailure")), str(body.get("message", "")))


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
