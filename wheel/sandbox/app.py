"""The sandbox server: marketplace endpoints, plus `/_sandbox/...` to steer and inspect it.

Each marketplace lives under its own prefix (`/tatacliq/...`), so a channel's base URL is
`http://host:port/<marketplace>`, and adapters call the same paths they call in production.
Per channel it checks the bearer token, and can be told to fail with an HTTP status, to be slow,
or to refuse the token. It records every call (`GET /_sandbox/calls`) and keeps what each call
changed (`GET /_sandbox/state/<channel>`), so a test can check what the marketplace ended with.
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

log = logging.getLogger("wheel.sandbox")


@dataclass
class ChannelBehaviour:
    marketplace: str = "tatacliq"
    token: str = ""
    # Answer every call with this HTTP status (e.g. 500) instead of handling it.
    fail_status: int | None = None
    # Fail only this many calls, then behave (None: fail every call).
    fail_times: int | None = None
    delay_s: float = 0.0
    refuse_token: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChannelBehaviour:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown channel settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        behaviour = cls(**data)
        for f in fields(cls):
            value = getattr(behaviour, f.name)
            allowed = {"marketplace": (str,), "token": (str,), "fail_status": (int, type(None)),
                       "fail_times": (int, type(None)), "delay_s": (int, float), "refuse_token": (bool,)}[f.name]
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ValueError(f"{f.name} must be {' or '.join(t.__name__ for t in allowed)}, not {value!r}")
        return behaviour


@dataclass
class Call:
    id: int
    at: float
    marketplace: str
    channel: str
    method: str
    path: str
    status: int
    request_id: str | None
    body: Any = field(default=None)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class SandboxState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.channels: dict[str, ChannelBehaviour] = {}
        self.calls: list[Call] = []
        self.listings: dict[str, dict[str, dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    def record(self, **kwargs: Any) -> Call:
        with self.lock:
            call = Call(id=next(self._ids), at=time.time(), **kwargs)
            self.calls.append(call)
            return call


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


class SandboxApp:
    def __init__(self, channels: dict[str, ChannelBehaviour] | None = None):
        self.state = SandboxState()
        self.state.channels.update(channels or {})
        self.url_map = Map(
            [
                Rule("/tatacliq/channels/<channel>/ranging", endpoint="tatacliq_ranging", methods=["POST"]),
                Rule("/_sandbox/health", endpoint="health", methods=["GET"]),
                Rule("/_sandbox/channels", endpoint="list_channels", methods=["GET"]),
                Rule("/_sandbox/channels/<channel>", endpoint="configure_channel", methods=["PUT"]),
                Rule("/_sandbox/calls", endpoint="calls", methods=["GET"]),
                Rule("/_sandbox/state/<channel>", endpoint="channel_state", methods=["GET"]),
                Rule("/_sandbox/reset", endpoint="reset", methods=["POST"]),
            ]
        )

    def __call__(self, environ, start_response):
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, values = adapter.match()
            response = getattr(self, f"on_{endpoint}")(request, **values)
        except HTTPException as exc:
            response = _json({"code": exc.name.upper().replace(" ", "_"), "message": exc.description}, exc.code)
        return response(environ, start_response)

    # -- marketplace endpoints ----------------------------------------------------------------

    def _guard(self, request: Request, marketplace: str, channel: str) -> tuple[ChannelBehaviour | None, Response | None]:
        """Auth, injected latency and faults, shared by every marketplace endpoint."""
        behaviour = self.state.channels.get(channel)
        if behaviour is None or behaviour.marketplace != marketplace:
            return None, _json({"code": "CHANNEL_NOT_FOUND", "message": f"no {marketplace} channel {channel}"}, 404)
        if behaviour.delay_s:
            time.sleep(behaviour.delay_s)
        supplied = request.headers.get("Authorization", "")
        expected = f"Bearer {behaviour.token}"
        if behaviour.refuse_token or not hmac.compare_digest(supplied.encode(), expected.encode()):
            return behaviour, _json({"code": "UNAUTHORIZED", "message": "invalid or expired bearer token"}, 401)
        if behaviour.fail_status is not None:
            with self.state.lock:
                failing = behaviour.fail_times is None or behaviour.fail_times > 0
                if failing and behaviour.fail_times is not None:
                    behaviour.fail_times -= 1
            if failing:
                return behaviour, _json({"code": "INJECTED_FAULT", "message": "fault injected by the sandbox"}, behaviour.fail_status)
        return behaviour, None

    def on_tatacliq_ranging(self, request: Request, channel: str) -> Response:
        body = request.get_json(silent=True)
        _, refusal = self._guard(request, "tatacliq", channel)
        if refusal is None:
            refusal = _check_items(body, ("ean", "sku"))
        if refusal is None:
            with self.state.lock:
                listings = self.state.listings.setdefault(channel, {})
                for item in body:
                    listing = listings.setdefault(item["sku"], {})
                    listing.update(ean=item["ean"], ranged=True)
            response = _json({"status": "SUCCESS", "items": [{"sku": i["sku"], "status": "RANGED"} for i in body]})
        else:
            response = refusal
        self.state.record(
            marketplace="tatacliq", channel=channel, method=request.method, path=request.path,
            status=response.status_code, request_id=request.headers.get("X-Request-Id"), body=body,
        )
        return response

    # -- steering and inspection --------------------------------------------------------------

    def on_health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    def on_list_channels(self, request: Request) -> Response:
        with self.state.lock:
            return _json({ch: {**asdict(b), "token": "***"} for ch, b in self.state.channels.items()})

    def on_configure_channel(self, request: Request, channel: str) -> Response:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return _json({"code": "BAD_REQUEST", "message": "send a JSON object of channel settings"}, 400)
        with self.state.lock:
            current = asdict(self.state.channels.get(channel, ChannelBehaviour()))
            try:
                self.state.channels[channel] = ChannelBehaviour.from_json({**current, **data})
            except (TypeError, ValueError) as exc:
                return _json({"code": "BAD_REQUEST", "message": str(exc)}, 400)
        return _json({"channel": channel, "configured": True})

    def on_calls(self, request: Request) -> Response:
        channel = request.args.get("channel")
        try:
            since = int(request.args.get("since", 0))
        except ValueError:
            return _json({"code": "BAD_REQUEST", "message": "since must be a call id (a whole number)"}, 400)
        with self.state.lock:
            calls = [
                {**asdict(c), "accepted": c.accepted}
                for c in self.state.calls
                if c.id > since and (channel is None or c.channel == channel)
            ]
        return _json({"calls": calls})

    def on_channel_state(self, request: Request, channel: str) -> Response:
        with self.state.lock:
            if channel not in self.state.channels:
                raise NotFound(f"no channel {channel} in the sandbox")
            return _json({"channel": channel, "listings": self.state.listings.get(channel, {})})

    def on_reset(self, request: Request) -> Response:
        with self.state.lock:
            self.state.calls.clear()
            self.state.listings.clear()
        return _json({"reset": True})


def _check_items(body: Any, keys: tuple[str, ...]) -> Response | None:
    if not isinstance(body, list) or not body:
        return _json({"code": "INVALID_PAYLOAD", "message": "expected a non-empty JSON array of items"}, 400)
    for index, item in enumerate(body):
        if not isinstance(item, dict) or any(not isinstance(item.get(k), str) or not item[k].strip() for k in keys):
            return _json({"code": "INVALID_ITEM", "message": f"item {index} needs non-blank {', '.join(keys)}"}, 400)
    return None


def load_config(path: str) -> dict[str, ChannelBehaviour]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return {channel: ChannelBehaviour.from_json(settings) for channel, settings in data.get("channels", {}).items()}


def serve(app: SandboxApp, host: str, port: int):
    """A threaded server for the app, bound and ready for `serve_forever()` (port 0: any free one)."""
    return make_server(host, port, app, threaded=True)
