"""Marketplace quotas as token buckets in Redis, shared by every worker on every host (contract 3).

One bucket per (channel, API operation), refilled at the quota's rate up to its burst, kept by a
Lua script so that taking a token is atomic and uses Redis's clock, not the workers'. A worker
waits inline only for a moment; a longer wait raises QuotaWait and the task reschedules itself.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping

import redis

from wheel.marketplaces.base import Quota, QuotaWait

# The bucket as it is now (ARGV[1] rate, ARGV[2] burst): its tokens, refilled since its stamp.
REFILL = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil then tokens = burst; stamp = now end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
"""

TAKE = REFILL + """
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""

# How long until `count` (ARGV[3]) tokens are there, taking none (the bucket as TAKE would find it).
PEEK = REFILL + """
local count = tonumber(ARGV[3])
return tostring(math.max(0, (count - tokens) / rate))
"""

# The marketplace answered 429: it counted differently (another app on the same seller account, a
# lower limit than documented). Empty the bucket, so every worker waits for the next token, and
# hold it empty at least `hold` seconds (a Retry-After, when the marketplace sends one).
DRAIN = """
local rate = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tokens = -math.max(0, hold * rate - 1)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((1 - tokens) / rate) + 60)
return tostring((1 - tokens) / rate)
"""

# Stay a little under the published rate and burst, so that the jitter between our clock and the
# marketplace's never makes a request arrive early: a 429 costs more than the 3% it saves.
RATE_MARGIN = 0.97
BURST_MARGIN = 1


def effective_quotas(
    documented: Mapping[str, Quota], scale: float = 1.0, overrides: Mapping[str, list[float]] | None = None
) -> dict[str, Quota]:
    """The channel's quotas: the documented ones times `scale`, then its own overrides."""
    quotas = {op: Quota(q.rate_per_s * scale, q.burst) for op, q in documented.items()}
    for op, (rate, burst) in (overrides or {}).items():
        quotas[op] = Quota(float(rate), float(burst))
    return quotas


class RedisQuotaGate:
    def __init__(
        self,
        client: redis.Redis,
        channel_id: str,
        quotas: Mapping[str, Quota],
        *,
        max_inline_wait_s: float = 1.0,
        prefix: str = "wheel:quota",
    ):
        self._take = client.register_script(TAKE)
        self._drain = client.register_script(DRAIN)
        self._peek = client.register_script(PEEK)
        self.channel_id = channel_id
        self.quotas = dict(quotas)
        self.max_inline_wait_s = max_inline_wait_s
        self.prefix = prefix
        self.granted: Counter[str] = Counter()
        # Per thread (an adapter may look up in a thread of its own while it updates), the
        # operation of the last request this gate let through: the one a 429 answers, since every
        # client takes a token right before each request.
        self._last = threading.local()

    @property
    def last_operation(self) -> str | None:
        return getattr(self._last, "operation", None)

    @last_operation.setter
    def last_operation(self, operation: str | None) -> None:
        self._last.operation = operation

    def acquire(self, operation: str) -> None:
        self.last_operation = operation
        quota = self.quotas.get(operation)
        if quota is None:
            self.granted[operation] += 1  # no published quota: nothing to wait for
            return
        rate = quota.rate_per_s * RATE_MARGIN
        burst = max(1.0, quota.burst - BURST_MARGIN)
        key = self._key(operation)
        while True:
            wait = float(self._take(keys=[key], args=[rate, burst]))
            if wait <= 0:
                self.granted[operation] += 1
                return
            if wait > self.max_inline_wait_s:
                raise QuotaWait(operation, wait)
            time.sleep(wait)

    def wait_s(self, operation: str, count: int = 1) -> float:
        """Seconds until `count` requests of `operation` could go (0: now), taking no token: what
        the push counts a feed's wait for its createFeed token as (sync.py, _conditions)."""
        quota = self.quotas.get(operation)
        if quota is None or count <= 0:
            return 0.0
        burst = max(1.0, quota.burst - BURST_MARGIN)
        return float(self._peek(keys=[self._key(operation)], args=[quota.rate_per_s * RATE_MARGIN, burst, count]))

    def throttled(self, retry_after: float | None = None) -> QuotaWait:
        """The marketplace refused the last request with 429: empty that operation's bucket for
        every worker, and say how long to wait. SP-API's 429 has no Retry-After ("Usage Plans and
        Rate Limits in the Selling Partner API",
        https://developer-docs.amazon.com/sp-api/docs/usage-plans-and-rate-limits), so the wait is
        the bucket's: the next token at the operation's rate, or the Retry-After if one came."""
        operation = self.last_operation or "unknown"
        quota = self.quotas.get(operation)
        if quota is None:
            return QuotaWait(operation, max(1.0, retry_after or 0.0))
        wait = float(self._drain(keys=[self._key(operation)],
                                 args=[quota.rate_per_s * RATE_MARGIN, max(0.0, retry_after or 0.0)]))
        return QuotaWait(operation, wait)

    def _key(self, operation: str) -> str:
        return f"{self.prefix}:{self.channel_id}:{operation}"
