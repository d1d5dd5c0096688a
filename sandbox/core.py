"""What every emulated marketplace shares: channels and their behaviour, quotas, faults, tokens,
the call log and the listing state.

An emulator (one module per marketplace) declares its endpoints and its documented quotas, and
asks the core to admit each call: the core injects the channel's latency and faults and answers
429 when the call would exceed the quota, exactly as the marketplace would.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Protocol

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.orders import OrderBook


@dataclass
class ChannelBehaviour:
    marketplace: str = "tatacliq"
    # The channel's secret: Tata CLiQ's bearer token, Amazon's LWA refresh token, Flipkart's app secret.
    token: str = ""
    # Amazon's LWA client id and secret; Flipkart's app id. Unused by Tata CLiQ.
    client_id: str = ""
    client_secret: str = ""
    # Lifetime of the access tokens the sandbox issues (Amazon, Flipkart).
    token_ttl_s: float = 3600.0
    # Answer every call with this HTTP status (e.g. 500) instead of handling it.
    fail_status: int | None = None
    # Fail only this many calls, then behave (None: fail every call).
    fail_times: int | None = None
    # Fail only calls of this operation (e.g. "inventory"; None: every operation).
    fail_operation: str | None = None
    # Fail only calls of these operations (e.g. the pushes, and not the order pulls; None: every one).
    fail_operations: list[str] | None = None
    # Probability that a call fails with HTTP 500 (random faults).
    fault_rate: float = 0.0
    delay_s: float = 0.0
    # Chaos (the chaos run, tests/chaos/): this share of calls is refused before it is handled,
    # half with a 5xx (500, 502 or 503) and half with a 429 that has no Retry-After, as SP-API's
    # 429s have none (see `_as_error_list` in sandbox/amazon.py: "Usage Plans and Rate Limits",
    # https://developer-docs.amazon.com/sp-api/docs/usage-plans-and-rate-limits); and this share
    # of calls is answered `chaos_slow_s` late (longer than a push lease, to test contract 2).
    chaos_rate: float = 0.0
    chaos_slow_rate: float = 0.0
    chaos_slow_s: float = 0.0
    refuse_token: bool = False
    # Every documented quota multiplied by this (to keep long runs short); and per-operation
    # overrides, {"patchListingsItem": [rate per second, burst]}.
    quota_scale: float = 1.0
    quotas: dict[str, list[float]] = field(default_factory=dict)
    # Amazon's rule that a search window must end at least this long ago (2 minutes); tests shorten it.
    order_lag_s: float = 120.0
    # Amazon: seconds a JSON_LISTINGS_FEED stays IN_PROGRESS before it is applied and DONE; and
    # whether its feeds end FATAL (aborted, nothing applied, no report).
    feed_processing_s: float = 0.0
    feed_fatal: bool = False
    # Amazon: report a cancelled order item with quantityOrdered 0 and no unit price, as the
    # Orders API v0 did (searchOrders v2026-01-01 may keep them; see sandbox/amazon.py).
    cancelled_quantity_zero: bool = False
    # Switches only one marketplace's emulator reads (Flipkart's are listed in sandbox/flipkart.py).
    options: dict[str, Any] = field(default_factory=dict)

    _TYPES = {
        "marketplace": (str,), "token": (str,), "client_id": (str,), "client_secret": (str,),
        "token_ttl_s": (int, float), "fail_status": (int, type(None)), "fail_times": (int, type(None)),
        "fail_operation": (str, type(None)), "fail_operations": (list, type(None)),
        "fault_rate": (int, float), "delay_s": (int, float), "refuse_token": (bool,),
        "chaos_rate": (int, float), "chaos_slow_rate": (int, float), "chaos_slow_s": (int, float),
        "quota_scale": (int, float), "quotas": (dict,), "order_lag_s": (int, float),
        "feed_processing_s": (int, float), "feed_fatal": (bool,),
        "cancelled_quantity_zero": (bool,),
        "options": (dict,),
    }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChannelBehaviour:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown channel settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        behaviour = cls(**data)
        for name, allowed in cls._TYPES.items():
            value = getattr(behaviour, name)
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ValueError(f"{name} must be {' or '.join(t.__name__ for t in allowed)}, not {value!r}")
        return behaviour

    def public(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("token", "client_secret"):
            out[secret] = "***" if out[secret] else ""
        return out


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
    operation: str | None = None
    body: Any = field(default=None)
    # When the request came in (`at` is when it was answered): calls in flight together overlap.
    received_at: float | None = None

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class Bucket:
    """A token bucket: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> float:
        """0 when a token was taken; else the seconds until one will be there."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Money read from requests is kept exact (Decimal) and answered as a JSON number.
    return Response(json.dumps(data, default=_number), status=status, mimetype="application/json", headers=headers)


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"code": code, "message": message}, status, headers)


class Emulator(Protocol):
    """One marketplace's API. Endpoints are `Rule(path, endpoint="<name>")`, handled by
    `on_<name>(request, core, **values)`."""

    marketplace: str
    # Documented quotas: operation -> (requests per second, burst).
    quotas: dict[str, tuple[float, float]]

    def rules(self) -> list[Rule]: ...


class SandboxCore:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.channels: dict[str, ChannelBehaviour] = {}
        self.calls: list[Call] = []
        # channel -> sku -> what the marketplace holds for it
        self.listings: dict[str, dict[str, dict[str, Any]]] = {}
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # access token -> (channel, expires at)
        self.throttled = 0  # calls answered 429
        self.chaos_refused = 0  # calls refused by a channel's chaos_rate
        self._ids = itertools.count(1)
        self.emulators: dict[str, Emulator] = {}
        # Orders and cancellations, created through /_sandbox/orders and served by the emulators.
        self.orders = OrderBook()

    # -- channels and tokens ------------------------------------------------------------------

    def channel(self, marketplace: str, channel_id: str) -> ChannelBehaviour | None:
        behaviour = self.channels.get(channel_id)
        return behaviour if behaviour is not None and behaviour.marketplace == marketplace else None

    def find_channel(self, marketplace: str, **match: str) -> tuple[str, ChannelBehaviour] | None:
        """The channel of this marketplace whose settings equal `match` (e.g. client_id=...)."""
        for channel_id, behaviour in self.channels.items():
            if behaviour.marketplace == marketplace and all(
                secrets.compare_digest(str(getattr(behaviour, k)), str(v)) for k, v in match.items()
            ):
                return channel_id, behaviour
        return None

    def issue_token(self, channel_id: str, ttl_s: float) -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = (channel_id, time.time() + ttl_s)
        return token

    def channel_for_token(self, token: str) -> str | None:
        """The channel an access token was issued to, if it is still valid."""
        with self.lock:
            entry = self.tokens.get(token)
        if entry is None or entry[1] < time.time():
            return None
        behaviour = self.channels.get(entry[0])
        if behaviour is None or behaviour.refuse_token:
            return None
        return entry[0]

    # -- admission: latency, faults, quotas ---------------------------------------------------

    def admit(self, behaviour: ChannelBehaviour, channel_id: str, operation: str) -> Response | None:
        """None when the call may proceed; else the response the marketplace would give."""
        if behaviour.delay_s:
            time.sleep(behaviour.delay_s)
        chaos = self._chaos(behaviour)
        if chaos is not None:
            return chaos
        if (behaviour.fail_status is not None and behaviour.fail_operation in (None, operation)
                and (behaviour.fail_operations is None or operation in behaviour.fail_operations)):
            with self.lock:
                failing = behaviour.fail_times is None or behaviour.fail_times > 0
                if failing and behaviour.fail_times is not None:
                    behaviour.fail_times -= 1
            if failing:
                return error(behaviour.fail_status, "INJECTED_FAULT", "fault injected by the sandbox")
        if behaviour.fault_rate and random.random() < behaviour.fault_rate:
            return error(500, "INJECTED_FAULT", "random fault injected by the sandbox")
        wait = self._take(behaviour, channel_id, operation)
        if wait:
            with self.lock:
                self.throttled += 1
            return error(429, "QuotaExceeded", f"You exceeded your quota for {operation}",
                         {"Retry-After": f"{max(wait, 0.001):.3f}"})
        return None

    def _chaos(self, behaviour: ChannelBehaviour) -> Response | None:
        if behaviour.chaos_slow_rate and random.random() < behaviour.chaos_slow_rate:
            time.sleep(behaviour.chaos_slow_s)
        if behaviour.chaos_rate and random.random() < behaviour.chaos_rate:
            with self.lock:
                self.chaos_refused += 1
            if random.random() < 0.5:
                return error(429, "QuotaExceeded", "chaos: throttled, no Retry-After")
            return error(random.choice((500, 502, 503)), "INJECTED_FAULT", "chaos: server error")
        return None

    def quota(self, behaviour: ChannelBehaviour, operation: str) -> tuple[float, float] | None:
        if operation in behaviour.quotas:
            rate, burst = behaviour.quotas[operation]
            return float(rate), float(burst)
        emulator = self.emulators.get(behaviour.marketplace)
        documented = emulator.quotas.get(operation) if emulator else None
        if documented is None:
            return None
        rate, burst = documented
        return rate * behaviour.quota_scale, burst

    def _take(self, behaviour: ChannelBehaviour, channel_id: str, operation: str) -> float:
        quota = self.quota(behaviour, operation)
        if quota is None:
            return 0.0
        with self.lock:
            bucket = self.buckets.get((channel_id, operation))
            if bucket is None or (bucket.rate, bucket.burst) != quota:
                bucket = self.buckets[(channel_id, operation)] = Bucket(*quota)
            return bucket.take()

    # -- state and the call log ---------------------------------------------------------------

    def listing(self, channel_id: str, sku: str) -> dict[str, Any]:
        """The marketplace's record of a SKU (created empty); change it under `core.lock`."""
        return self.listings.setdefault(channel_id, {}).setdefault(sku, {})

    def arrival(self) -> int:
        with self.lock:
            return next(self._ids)

    def record(self, request: Request, marketplace: str, channel: str, status: int,
               operation: str | None = None, body: Any = None) -> Call:
        with self.lock:
            # Calls are numbered in the order they arrived (the app numbers each request first),
            # so the log shows what the marketplace received first, not what it finished first.
            call_id = request.environ.get("sandbox.arrival") or next(self._ids)
            call = Call(id=call_id, at=time.time(), marketplace=marketplace, channel=channel,
                        method=request.method, path=request.path, status=status,
                        request_id=request.headers.get("X-Request-Id"), operation=operation, body=body,
                        received_at=request.environ.get("sandbox.received_at"))
            self.calls.append(call)
            return call
