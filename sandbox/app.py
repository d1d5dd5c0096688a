"""The sandbox server: every emulated marketplace, plus `/_sandbox/...` to steer and inspect it.

Each marketplace lives under its own prefix (`/tatacliq/...`, `/amazon/...`, `/flipkart/...`), so a
channel's base URL is `http://host:port/<marketplace>`, and adapters call the same paths they call
in production. Per channel it can be told to fail, to be slow, to refuse tokens, and what quotas to
enforce. It records every call (`GET /_sandbox/calls`) and keeps what the calls changed
(`GET /_sandbox/state/<channel>`), so a test can check what the marketplace ended with.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sandbox.amazon import Amazon
from sandbox.core import ChannelBehaviour, Emulator, SandboxCore, error, json_response
from sandbox.flipkart import Flipkart
from sandbox.tatacliq import TataCliq

log = logging.getLogger("sandbox")


def emulators() -> list[Emulator]:
    return [TataCliq(), Amazon(), Flipkart()]


class SandboxApp:
    def __init__(self, channels: dict[str, ChannelBehaviour] | None = None):
        self.core = SandboxCore()
        self.core.channels.update(channels or {})
        self.handlers: dict[str, Any] = {}
        # Called with (method, path, query, body, status, answer, mimetype) after every request:
        # the tests check each Amazon call and answer against Amazon's models (tests/support/spapi.py).
        self.observers: list[Callable[..., None]] = []
        rules = [
            Rule("/_sandbox/health", endpoint="_sandbox.health", methods=["GET"]),
            Rule("/_sandbox/channels", endpoint="_sandbox.list_channels", methods=["GET"]),
            Rule("/_sandbox/channels/<channel>", endpoint="_sandbox.configure_channel", methods=["PUT"]),
            Rule("/_sandbox/calls", endpoint="_sandbox.calls", methods=["GET"]),
            Rule("/_sandbox/state/<channel>", endpoint="_sandbox.channel_state", methods=["GET"]),
            Rule("/_sandbox/stats", endpoint="_sandbox.stats", methods=["GET"]),
            Rule("/_sandbox/reset", endpoint="_sandbox.reset", methods=["POST"]),
            Rule("/_sandbox/orders", endpoint="_sandbox.create_orders", methods=["POST"]),
            Rule("/_sandbox/orders", endpoint="_sandbox.list_orders", methods=["GET"]),
            Rule("/_sandbox/cancellations", endpoint="_sandbox.cancel_orders", methods=["POST"]),
            Rule("/_sandbox/cancellation-requests", endpoint="_sandbox.request_cancellations", methods=["POST"]),
        ]
        self.handlers["_sandbox"] = self
        for emulator in emulators():
            self.core.emulators[emulator.marketplace] = emulator
            self.handlers[emulator.marketplace] = emulator
            for rule in emulator.rules():
                rule.endpoint = f"{emulator.marketplace}.{rule.endpoint}"
                rules.append(rule)
        self.url_map = Map(rules)

    @property
    def state(self) -> SandboxCore:
        return self.core

    def __call__(self, environ, start_response):
        environ["sandbox.arrival"] = self.core.arrival()
        environ["sandbox.received_at"] = time.time()
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, values = adapter.match()
            owner, name = endpoint.split(".", 1)
            handler = getattr(self.handlers[owner], f"on_{name}")
            response = handler(request, **values) if owner == "_sandbox" else handler(request, self.core, **values)
        except HTTPException as exc:
            response = error(exc.code, exc.name.upper().replace(" ", "_"), exc.description)
        for observe in self.observers:
            # The path as sent, still percent-encoded (a SKU may hold '/').
            raw_path = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path).split("?", 1)[0]
            observe(request.method, raw_path, request.args.to_dict(flat=False), request.get_data(),
                    response.status_code, response.get_data(), response.mimetype)
        return response(environ, start_response)

    # -- steering and inspection --------------------------------------------------------------

    def on_health(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    def on_list_channels(self, request: Request) -> Response:
        with self.core.lock:
            return json_response({ch: b.public() for ch, b in self.core.channels.items()})

    def on_configure_channel(self, request: Request, channel: str) -> Response:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return error(400, "BAD_REQUEST", "send a JSON object of channel settings")
        with self.core.lock:
            current = self.core.channels.get(channel)
            base = {k: v for k, v in vars(current).items()} if current else {}
            try:
                self.core.channels[channel] = ChannelBehaviour.from_json({**base, **data})
            except (TypeError, ValueError) as exc:
                return error(400, "BAD_REQUEST", str(exc))
        return json_response({"channel": channel, "configured": True})

    def on_calls(self, request: Request) -> Response:
        channel = request.args.get("channel")
        try:
            since = int(request.args.get("since", 0))
        except ValueError:
            return error(400, "BAD_REQUEST", "since must be a call id (a whole number)")
        with self.core.lock:
            calls = [
                {**vars(c), "accepted": c.accepted}
                for c in sorted(self.core.calls, key=lambda c: c.id)
                if c.id > since and (channel is None or c.channel == channel)
            ]
        return json_response({"calls": calls})

    def on_channel_state(self, request: Request, channel: str) -> Response:
        for emulator in self.core.emulators.values():
            process_due = getattr(emulator, "process_due", None)
            if process_due is not None:
                process_due(self.core)  # feeds whose processing time has passed have applied
        with self.core.lock:
            if channel not in self.core.channels:
                raise NotFound(f"no channel {channel} in the sandbox")
            return json_response({"channel": channel, "listings": self.core.listings.get(channel, {})})

    def on_stats(self, request: Request) -> Response:
        with self.core.lock:
            by_status: dict[str, int] = {}
            for call in self.core.calls:
                by_status[str(call.status)] = by_status.get(str(call.status), 0) + 1
            return json_response({"calls": len(self.core.calls), "by_status": by_status, "throttled": self.core.throttled,
                                  "chaos_refused": self.core.chaos_refused})

    def on_reset(self, request: Request) -> Response:
        with self.core.lock:
            self.core.calls.clear()
            self.core.listings.clear()
            self.core.buckets.clear()
            self.core.throttled = 0
            self.core.chaos_refused = 0
        self.core.orders.clear()
        return json_response({"reset": True})

    # -- orders --------------------------------------------------------------------------------

    def _order_request(self, request: Request) -> tuple[str, dict[str, Any]] | Response:
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not isinstance(data.get("channel"), str):
            return error(400, "BAD_REQUEST", "send a JSON object with a channel")
        if data["channel"] not in self.core.channels:
            return error(404, "CHANNEL_NOT_FOUND", f"no channel {data['channel']} in the sandbox")
        return data["channel"], data

    def on_create_orders(self, request: Request) -> Response:
        """{"channel": "UT", "count": 100, "lines_per_order": 2, "skus": [...], "seed": 1}
        or {"channel": "UT", "orders": [{"lines": [{"sku", "price", "quantity"}], ...}]}."""
        parsed = self._order_request(request)
        if isinstance(parsed, Response):
            return parsed
        channel, data = parsed
        try:
            made = self.core.orders.create(
                channel, count=int(data.get("count", 0)), explicit=data.get("orders"), skus=data.get("skus"),
                lines_per_order=int(data.get("lines_per_order", 1)), seed=data.get("seed"),
            )
        except (TypeError, ValueError) as exc:
            return error(400, "BAD_REQUEST", str(exc))
        return json_response({"channel": channel, "created": [o.public() for o in made]})

    def on_list_orders(self, request: Request) -> Response:
        channel = request.args.get("channel")
        with self.core.orders.lock:
            channels = [channel] if channel else list(self.core.orders.orders)
            orders = [o.public() for ch in channels for o in self.core.orders.for_channel(ch)]
        return json_response({"orders": orders})

    def on_cancel_orders(self, request: Request) -> Response:
        """{"channel": "UT", "count": 10, "partial_share": 0.3} or
        {"channel": "UT", "cancellations": [{"order_id", "line_ids"?, "type"?, "reason"?}]}."""
        parsed = self._order_request(request)
        if isinstance(parsed, Response):
            return parsed
        channel, data = parsed
        try:
            done = self.core.orders.cancel(
                channel, count=int(data.get("count", 0)), explicit=data.get("cancellations"),
                partial_share=float(data.get("partial_share", 0.0)), seed=data.get("seed"),
            )
        except (TypeError, ValueError) as exc:
            return error(400, "BAD_REQUEST", str(exc))
        return json_response({"channel": channel, "cancelled": [
            {"order_id": order.order_id, "line_ids": [line.line_id for line in lines], "whole_order": order.cancelled}
            for order, lines in done
        ]})

    def on_request_cancellations(self, request: Request) -> Response:
        """{"channel": "UZ", "requests": [{"order_id", "line_ids"?, "reason"?}]}: buyers asking to
        cancel (Amazon shows it as an item's cancellation.cancellationRequest until someone acts)."""
        parsed = self._order_request(request)
        if isinstance(parsed, Response):
            return parsed
        channel, data = parsed
        if not isinstance(data.get("requests"), list):
            return error(400, "BAD_REQUEST", "send requests: a list of {order_id, line_ids?, reason?}")
        try:
            done = self.core.orders.request_cancellation(channel, data["requests"])
        except (TypeError, ValueError) as exc:
            return error(400, "BAD_REQUEST", str(exc))
        return json_response({"channel": channel, "requested": [
            {"order_id": order.order_id, "line_ids": [line.line_id for line in lines]} for order, lines in done
        ]})


def load_config(path: str) -> dict[str, ChannelBehaviour]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return {channel: ChannelBehaviour.from_json(settings) for channel, settings in data.get("channels", {}).items()}


def serve(app: SandboxApp, host: str, port: int):
    """A threaded server for the app, bound and ready for `serve_forever()` (port 0: any free one)."""
    return make_server(host, port, app, threaded=True)
