"""Tata CLiQ, as the OMS team documented it: a JSON POST per operation with a static bearer token.

No quotas are published; none are enforced unless a channel sets some (`quotas`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import hmac

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from wheel.sandbox.core import SandboxCore, error, json_response

OPERATIONS = {
    "ranging": ("ean", "sku"),
    "deranging": ("ean", "sku"),
    "inventory": ("ean", "sku", "quantity"),
    "pricing": ("ean", "sku", "mrp", "sellingPrice"),
}


class TataCliq:
    marketplace = "tatacliq"
    quotas: dict[str, tuple[float, float]] = {}

    def rules(self) -> list[Rule]:
        return [Rule("/tatacliq/channels/<channel>/<any(ranging,deranging,inventory,pricing):operation>",
                     endpoint="operation", methods=["POST"])]

    def on_operation(self, request: Request, core: SandboxCore, channel: str, operation: str) -> Response:
        body = request.get_json(silent=True)
        response = self._handle(request, core, channel, operation, body)
        core.record(request, self.marketplace, channel, response.status_code, operation, body)
        return response

    def _handle(self, request, core: SandboxCore, channel: str, operation: str, body: Any) -> Response:
        behaviour = core.channel(self.marketplace, channel)
        if behaviour is None:
            return error(404, "CHANNEL_NOT_FOUND", f"no tatacliq channel {channel}")
        supplied = request.headers.get("Authorization", "")
        if behaviour.refuse_token or not hmac.compare_digest(supplied.encode(), f"Bearer {behaviour.token}".encode()):
            if behaviour.delay_s:
                core.admit(behaviour, channel, "_auth")  # the latency still applies
            return error(401, "UNAUTHORIZED", "invalid or expired bearer token")
        refusal = core.admit(behaviour, channel, operation)
        if refusal is not None:
            return refusal
        problem = _check_items(body, OPERATIONS[operation])
        if problem is not None:
            return problem
        results = []
        with core.lock:
            for item in body:
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
                    listing["mrp"], listing["selling_price"] = str(item["mrp"]), str(item["sellingPrice"])
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
        try:
            mrp, price = Decimal(str(item["mrp"])), Decimal(str(item["sellingPrice"]))
        except InvalidOperation:
            return "mrp and sellingPrice must be numbers"
        if price > mrp:
            return "sellingPrice is above mrp"
        if price <= 0:
            return "sellingPrice must be positive"
    return None
