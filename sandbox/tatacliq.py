"""Tata CLiQ, as the OMS team documented it: a JSON POST per operation with a static bearer token,
and two XML GETs for orders (new-orders, cancelled-orders) that answer everything at once: no
filters, no paging.

Tata CLiQ publishes no API. What this emulates comes from the original Wheel (github
demystifyfp/BlogSamples, clojure/wheel): `POST {base}/channels/{id}/ranging` with a Bearer token and
`[{"ean", "sku"}]` (src/wheel/marketplace/tata_cliq/api.clj), and `GET {base}/channels/{id}/new-orders`
answering doc/sample-order-response.xml. The rest is UNCONFIRMED, invented by analogy with those
two: the deranging, inventory, pricing and cancelled-orders paths and bodies, and the JSON answer
`{"status", "items": [{"sku", "status", "reason"}]}` (the original's mock answered only a status
code: 200 for channel UA, 500 for UB, per demystifyfp/demystifyfp
content/clojure/marketplace-middleware/ranging-items-in-marketplaces.md). Tata CLiQ's real
PartnerConnect API differs (paths, SlaveID, every value a string), as integrators describe it:
https://auperator.atlassian.net/wiki/spaces/POE/pages/1830780929/Tata+Cliq+Update+Inventory+Flow and
https://auperator.atlassian.net/wiki/spaces/POE/pages/3759144969/Fetch+orders+using+Order+ID.

No quotas are published; none are enforced unless a channel sets some (`quotas`; the order
operations are "newOrders" and "cancelledOrders").

Behaviours only Tata CLiQ has are switched per channel with `PUT /_sandbox/tatacliq/channels/<id>`
(see `Switches`), not in the shared channel settings.
"""

from __future__ import annotations

import hmac
import re
import threading
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

from lxml import etree
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.core import ChannelBehaviour, SandboxCore, error, json_response
from sandbox.orders import SandboxAddress, SandboxOrder

OPERATIONS = {
    "ranging": ("ean", "sku"),
    "deranging": ("ean", "sku"),
    "inventory": ("ean", "sku", "quantity"),
    "pricing": ("ean", "sku", "mrp", "sellingPrice"),
}
# The order GETs: path segment -> operation (the quota's key).
ORDER_OPERATIONS = {"new-orders": "newOrders", "cancelled-orders": "cancelledOrders"}
# Money as a plain decimal string in rupees, paise at most: "999.50". UNCONFIRMED for this API; it
# follows PartnerConnect, whose price feed sends every value as a string ("MRP": "1000", "MOP":
# "999"): https://auperator.atlassian.net/wiki/spaces/POE/pages/3757408292/Add+Update+Price+of+a+product
MONEY = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")

# What a proxy or load balancer in front of an API serves while the API is down for maintenance.
# Proxies can be set to serve such a page with status 200 (nginx: `error_page 503 =200 /maintenance.html`,
# http://nginx.org/en/docs/http/ngx_http_core_module.html#error_page). UNCONFIRMED for Tata CLiQ: no
# source says its API sits behind one that does; a client must not take the page for an answer.
MAINTENANCE_PAGE = """<!DOCTYPE html>
<html><head><title>Down for maintenance</title></head>
<body><h1>We'll be back soon</h1><p>This site is down for scheduled maintenance. Please try again later.</p></body>
</html>
"""


@dataclass
class Switches:
    """Tata CLiQ-only behaviours of one channel, off unless a test turns them on."""

    # Answer with HTTP 200 and MAINTENANCE_PAGE (text/html), whatever the token, and change nothing:
    # the page comes from in front of the API, which never saw the call.
    maintenance_page: bool = False
    # Serve the page for only this many calls, then answer again (None: every call).
    maintenance_page_times: int | None = None
    # SKUs the JSON answer leaves out, and does not apply: an answer that is silent about a SKU.
    # UNCONFIRMED: nothing says Tata CLiQ's answer names every item sent; PartnerConnect's echoes
    # one STATUS/REASON per item it reports (the price page above), so a client must not count a
    # SKU it does not mention as done.
    unanswered_skus: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Switches:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Tata CLiQ switches: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        switches = cls(**data)
        if not isinstance(switches.maintenance_page, bool):
            raise ValueError(f"maintenance_page must be true or false, not {switches.maintenance_page!r}")
        times = switches.maintenance_page_times
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
            raise ValueError(f"maintenance_page_times must be a whole number >= 0 or null, not {times!r}")
        skus = switches.unanswered_skus
        if not isinstance(skus, list) or not all(isinstance(sku, str) for sku in skus):
            raise ValueError(f"unanswered_skus must be a list of SKUs, not {skus!r}")
        return switches


class TataCliq:
    marketplace = "tatacliq"
    quotas: dict[str, tuple[float, float]] = {}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.switches: dict[str, Switches] = {}

    def rules(self) -> list[Rule]:
        return [Rule("/tatacliq/channels/<channel>/<any(ranging,deranging,inventory,pricing):operation>",
                     endpoint="operation", methods=["POST"]),
                Rule("/tatacliq/channels/<channel>/<any('new-orders','cancelled-orders'):listing>",
                     endpoint="orders", methods=["GET"]),
                Rule("/_sandbox/tatacliq/channels/<channel>", endpoint="switches", methods=["GET", "PUT"])]

    # -- steering ------------------------------------------------------------------------------

    def on_switches(self, request: Request, core: SandboxCore, channel: str) -> Response:
        """GET: the channel's switches; PUT: change the ones the JSON object names."""
        if core.channel(self.marketplace, channel) is None:
            return error(404, "CHANNEL_NOT_FOUND", f"no tatacliq channel {channel} in the sandbox")
        with self._lock:
            current = self.switches.get(channel, Switches())
            if request.method == "PUT":
                data = request.get_json(silent=True)
                if not isinstance(data, dict):
                    return error(400, "BAD_REQUEST", "send a JSON object of Tata CLiQ switches")
                try:
                    current = self.switches[channel] = Switches.from_json({**asdict(current), **data})
                except (TypeError, ValueError) as exc:
                    return error(400, "BAD_REQUEST", str(exc))
            return json_response({"channel": channel, **asdict(current)})

    def _maintenance(self, core: SandboxCore, channel: str) -> Response | None:
        """The maintenance page, when the channel's switch is on (and not spent)."""
        if core.channel(self.marketplace, channel) is None:
            return None
        with self._lock:
            switches = self.switches.get(channel)
            if switches is None or not switches.maintenance_page or switches.maintenance_page_times == 0:
                return None
            if switches.maintenance_page_times is not None:
                switches.maintenance_page_times -= 1
        return Response(MAINTENANCE_PAGE, status=200, content_type="text/html; charset=utf-8")

    def _unanswered(self, channel: str) -> frozenset[str]:
        with self._lock:
            switches = self.switches.get(channel)
            return frozenset(switches.unanswered_skus) if switches else frozenset()

    # -- the API -------------------------------------------------------------------------------

    def on_operation(self, request: Request, core: SandboxCore, channel: str, operation: str) -> Response:
        body = request.get_json(silent=True)
        response = self._maintenance(core, channel)
        if response is None:
            response = self._handle(request, core, channel, operation, body)
        core.record(request, self.marketplace, channel, response.status_code, operation, body)
        return response

    def on_orders(self, request: Request, core: SandboxCore, channel: str, listing: str) -> Response:
        operation = ORDER_OPERATIONS[listing]
        response = self._maintenance(core, channel)
        if response is None:
            response = self._admit(request, core, channel, operation)
        if response is None:
            with core.orders.lock:  # lines change under this lock
                orders = core.orders.for_channel(channel)
                body = new_orders_xml(orders) if listing == "new-orders" else cancelled_orders_xml(orders)
            response = Response(body, status=200, content_type="application/xml; charset=utf-8")
        core.record(request, self.marketplace, channel, response.status_code, operation)
        return response

    def _admit(self, request: Request, core: SandboxCore, channel: str, operation: str) -> Response | None:
        """None when the call may proceed: the channel exists, the token is right, the quota allows it."""
        behaviour: ChannelBehaviour | None = core.channel(self.marketplace, channel)
        if behaviour is None:
            return error(404, "CHANNEL_NOT_FOUND", f"no tatacliq channel {channel}")
        supplied = request.headers.get("Authorization", "")
        if behaviour.refuse_token or not hmac.compare_digest(supplied.encode(), f"Bearer {behaviour.token}".encode()):
            if behaviour.delay_s:
                core.admit(behaviour, channel, "_auth")  # the latency still applies
            return error(401, "UNAUTHORIZED", "invalid or expired bearer token")
        return core.admit(behaviour, channel, operation)

    def _handle(self, request, core: SandboxCore, channel: str, operation: str, body: Any) -> Response:
        refusal = self._admit(request, core, channel, operation)
        if refusal is not None:
            return refusal
        problem = _check_items(body, OPERATIONS[operation])
        if problem is not None:
            return problem
        results = []
        unanswered = self._unanswered(channel)
        with core.lock:
            for item in body:
                if item["sku"] in unanswered:
                    continue
                failure = _item_failure(operation, item)
                if failure:
                    results.append({"sku": item["sku"], "status": "FAILURE", "reason": failure})
                    continue
                listing = core.listing(channel, item["sku"])
                listing["ean"] = item["ean"]
                if operation in ("ranging", "deranging"):
                    listing["ranged"] = operation == "ranging"
                elif operation == "inventory":
                    listing["quantity"] = item["quantity"]
                else:
                    listing["mrp"], listing["selling_price"] = item["mrp"], item["sellingPrice"]
                results.append({"sku": item["sku"], "status": "SUCCESS"})
        status = "SUCCESS" if all(r["status"] == "SUCCESS" for r in results) else "PARTIAL"
        return json_response({"status": status, "items": results})


def _check_items(body: Any, keys: tuple[str, ...]) -> Response | None:
    if not isinstance(body, list) or not body:
        return error(400, "INVALID_PAYLOAD", "expected a non-empty JSON array of items")
    for index, item in enumerate(body):
        if not isinstance(item, dict) or any(k not in item for k in keys):
            return error(400, "INVALID_ITEM", f"item {index} needs {', '.join(keys)}")
        if any(not isinstance(item[k], str) or not item[k].strip() for k in ("ean", "sku")):
            return error(400, "INVALID_ITEM", f"item {index} needs non-blank ean, sku")
    return None


def _item_failure(operation: str, item: dict) -> str | None:
    if operation == "inventory":
        quantity = item["quantity"]
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            return "quantity must be a whole number >= 0"
    if operation == "pricing":
        # Strings, not JSON numbers: a float cannot hold every amount in paise exactly.
        if not all(isinstance(item[k], str) and MONEY.fullmatch(item[k]) for k in ("mrp", "sellingPrice")):
            return 'mrp and sellingPrice must be decimal strings, e.g. "999.50"'
        mrp, price = Decimal(item["mrp"]), Decimal(item["sellingPrice"])
        if price > mrp:
            return "sellingPrice is above mrp"
        if price <= 0:
            return "sellingPrice must be positive"
    return None


# -- orders (XML) --------------------------------------------------------------------------------


def _element(parent: etree._Element, tag: str, text: str) -> etree._Element:
    child = etree.SubElement(parent, tag)
    child.text = text
    return child


def _address(parent: etree._Element, tag: str, address: SandboxAddress) -> None:
    element = etree.SubElement(parent, tag)
    for name, value in (("FirstName", address.first_name), ("LastName", address.last_name),
                        ("Address1", address.line1), ("Address2", address.line2), ("City", address.city),
                        ("State", address.state), ("Pincode", address.zip_code)):
        _element(element, name, value)


def _document(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def new_orders_xml(orders: list[SandboxOrder]) -> bytes:
    """Every order not wholly cancelled, as placed (all its lines, cancelled ones too)."""
    root = etree.Element("Orders")
    for order in orders:
        if order.cancelled:
            continue
        element = etree.SubElement(root, "Order")
        _element(element, "OrderNo", order.order_id)
        info = etree.SubElement(element, "AddressInfo")
        _address(info, "Shipping", order.ship_to)
        _address(info, "Billing", order.bill_to)
        payment = etree.SubElement(element, "PaymentInfo")
        _element(payment, "PaymentCost", str(order.total))
        _element(payment, "PaymentId", order.payment_ref)
        lines = etree.SubElement(element, "OrderLines")
        for line in order.lines:
            line_element = etree.SubElement(lines, "OrderLine")
            _element(line_element, "TransactionId", line.line_id)
            _element(line_element, "ArticleNumber", line.sku)
            _element(line_element, "Price", line.price)
            # An extension: Tata CLiQ's lines are one unit each and carry no quantity, but the
            # sandbox's generated orders may have more; only then is <Quantity> sent.
            if line.quantity != 1:
                _element(line_element, "Quantity", str(line.quantity))
    return _document(root)


def cancelled_orders_xml(orders: list[SandboxOrder]) -> bytes:
    """One <Order> per cancelled line, with its OrderNo and that line (every unit of it)."""
    root = etree.Element("Orders")
    for order in orders:
        for line in order.lines:
            if not line.cancelled:
                continue
            element = etree.SubElement(root, "Order")
            _element(element, "OrderNo", order.order_id)
            line_element = etree.SubElement(etree.SubElement(element, "OrderLines"), "OrderLine")
            _element(line_element, "TransactionId", line.line_id)
            _element(line_element, "ArticleNumber", line.sku)
            _element(line_element, "CancellationReason", line.cancel_reason or "")
            if line.quantity != 1:  # the same extension as in new-orders: the whole line is cancelled
                _element(line_element, "Quantity", str(line.quantity))
    return _document(root)
