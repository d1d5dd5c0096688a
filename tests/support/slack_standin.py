"""A stand-in for Slack (it cannot run here): the Web API's chat.postMessage and an incoming webhook.

It records every message it takes, and can be told to answer 429 with a Retry-After (as Slack's
rate limits do: https://api.slack.com/docs/rate-limits) or to be down (HTTP 503 to every request,
for a while or until told otherwise). Wheel reaches it through slack-sdk's real clients:
`WebClient(base_url=standin.api_url)` and `WebhookClient(standin.webhook_url)`.

What it answers follows Slack's documentation: chat.postMessage answers
`{"ok": true, "channel": ..., "ts": ...}` (https://api.slack.com/methods/chat.postMessage), and
`{"ok": false, "error": "ratelimited"}` with HTTP 429; a webhook answers `ok` as text
(https://api.slack.com/messaging/webhooks).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

WEBHOOK_PATH = "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"


@dataclass
class Received:
    kind: str  # "api" or "webhook"
    path: str
    body: dict[str, Any]
    authorization: str | None
    at: float

    @property
    def raw(self) -> str:
        return json.dumps(self.body, ensure_ascii=False)


@dataclass
class SlackStandIn:
    received: list[Received] = field(default_factory=list)
    refused: int = 0  # requests answered 503 or 429
    down_until: float = 0.0
    throttle_next: int = 0
    retry_after_s: float = 2.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def down(self, seconds: float = 3600.0) -> None:
        self.down_until = time.monotonic() + seconds

    def up(self) -> None:
        self.down_until = 0.0

    def throttle(self, times: int, retry_after_s: float) -> None:
        self.throttle_next, self.retry_after_s = times, retry_after_s

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    # -- the server ------------------------------------------------------------------------------

    @Request.application
    def _app(self, request: Request) -> Response:
        kind = "webhook" if request.path == WEBHOOK_PATH else "api" if request.path.startswith("/api/") else None
        if kind is None or request.method != "POST":
            return Response("not found", status=404)
        if time.monotonic() < self.down_until:
            with self._lock:
                self.refused += 1
            return Response("service unavailable", status=503)
        with self._lock:
            if self.throttle_next > 0:
                self.throttle_next -= 1
                self.refused += 1
                headers = {"Retry-After": f"{self.retry_after_s:g}"}
                if kind == "api":
                    return Response(json.dumps({"ok": False, "error": "ratelimited"}), status=429, headers=headers,
                                    content_type="application/json")
                return Response("rate_limited", status=429, headers=headers)
        if kind == "api" and request.path != "/api/chat.postMessage":
            return _json({"ok": False, "error": "unknown_method"})
        body = _body(request)
        with self._lock:
            self.received.append(Received(kind, request.path, body, request.headers.get("Authorization"),
                                          time.monotonic()))
            ts = f"{time.time():.6f}"
        if kind == "webhook":
            return Response("ok", content_type="text/plain")
        return _json({"ok": True, "channel": body.get("channel", "C0"), "ts": ts, "message": {"text": body.get("text")}})


def _body(request: Request) -> dict[str, Any]:
    data = request.get_data(as_text=True)
    if request.mimetype == "application/json":
        return json.loads(data or "{}")
    form = dict(parse_qsl(data))
    for key in ("attachments", "blocks"):
        if isinstance(form.get(key), str):
            form[key] = json.loads(form[key])
    return form


def _json(value: dict[str, Any]) -> Response:
    return Response(json.dumps(value), content_type="application/json")


# -- reading what Wheel sent -------------------------------------------------------------------------


def fields(message: Received) -> dict[str, str]:
    """The message's fields, by name ("Channel Id" -> "UB")."""
    out = {}
    for attachment in message.body.get("attachments") or []:
        for block in attachment.get("blocks") or []:
            for item in block.get("fields") or []:
                name, _, value = item["text"].partition("\n")
                out[name.strip("*")] = value
    return out


def texts(message: Received) -> list[str]:
    """Every text the message shows: the fallback, and each section's text and fields."""
    out = [message.body.get("text") or ""]
    for attachment in message.body.get("attachments") or []:
        out.append(attachment.get("fallback") or "")
        for block in attachment.get("blocks") or []:
            if block.get("text"):
                out.append(block["text"]["text"])
            out += [item["text"] for item in block.get("fields") or []]
    return out


def count_of(message: Received) -> int:
    return int(fields(message)["Count"])
