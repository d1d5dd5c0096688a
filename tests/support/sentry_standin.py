"""A stand-in for Sentry's ingest endpoint (Sentry cannot run here): an HTTP server that records
every envelope posted to it, for tests of what Wheel's processes report.

Envelopes are Sentry's format (https://develop.sentry.dev/sdk/data-model/envelopes/): a header line,
then items, each a header line (with its `type` and maybe `length`) and a payload. The SDK posts
them to /api/<project>/envelope/, gzipped.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Envelope:
    raw: bytes
    header: dict
    items: list[tuple[dict, bytes]] = field(default_factory=list)

    def payloads(self, kind: str) -> list[dict]:
        return [json.loads(payload) for header, payload in self.items if header.get("type") == kind]


def parse_envelope(raw: bytes) -> Envelope:
    head, _, rest = raw.partition(b"\n")
    envelope = Envelope(raw, json.loads(head))
    while rest.strip():
        item_head, _, rest = rest.partition(b"\n")
        header = json.loads(item_head)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"]:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        envelope.items.append((header, payload))
    return envelope


class SentryStandIn:
    """Start with `start()`; `dsn` points an SDK at it; `envelopes` is what arrived."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.rstrip("/").endswith("/envelope"):
                    with standin._lock:
                        standin.envelopes.append(parse_envelope(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://publickey@127.0.0.1:{self.server.server_port}/1"

    def start(self) -> SentryStandIn:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def items(self, kind: str) -> list[dict]:
        with self._lock:
            return [payload for envelope in self.envelopes for payload in envelope.payloads(kind)]

    def raw(self) -> bytes:
        with self._lock:
            return b"\n".join(envelope.raw for envelope in self.envelopes)
