"""Pushing one channel's share of an OMS message to its marketplace, exactly as far as possible.

A push is claimed with a lease before the call, so two workers never make the same call; a
worker killed mid-call leaves a lease that expires, and the push is tried again. Outcome events
carry a dedupe key, so a redelivered task never logs an outcome twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from datetime import timedelta

from sqlalchemy import func, text
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Channel, InboxMessage, Push
from wheel.domain import RangingItem
from wheel.events import NewEvent, Recorded, record
from wheel.marketplaces import UnknownMarketplace
from wheel.marketplaces.base import ChannelConfig, MarketplaceAdapter, PushResult
from wheel.marketplaces.errors import AuthError, MarketplaceError, PermanentError, TransientError

AdapterLookup = Callable[[ChannelConfig], MarketplaceAdapter]

CLAIM = text(
    """
    UPDATE pushes
       SET status = 'in_progress', attempts = attempts + 1, claimed_by = :worker,
           lease_until = now() + make_interval(secs => :lease), updated_at = now()
     WHERE id = :id
       AND next_attempt_at <= now() + interval '1 second'
       AND (status = 'pending' OR (status = 'in_progress' AND lease_until < now()))
    RETURNING id
    """
)


@dataclass
class PushOutcome:
    push_id: int
    status: str  # skipped | succeeded | failed | retry
    marketplace: str | None = None
    retry_in_s: float | None = None
    alerts: list[Recorded] = field(default_factory=list)


def run_push(
    sessions: sessionmaker[Session],
    push_id: int,
    *,
    adapters: AdapterLookup,
    worker: str,
    lease_s: int,
    default_retry_delays_s: Sequence[float],
) -> PushOutcome:
    with sessions.begin() as session:
        claimed = session.execute(CLAIM, {"id": push_id, "worker": worker, "lease": lease_s}).scalar()
        if claimed is None:
            return PushOutcome(push_id, "skipped")
        push = session.get(Push, push_id)
        channel = session.get(Channel, push.channel_id)
        parent_id = session.get(InboxMessage, push.inbox_id).event_id
        config = ChannelConfig(channel.id, channel.marketplace, channel.base_url, channel.credentials_ref)
        delays = list(channel.retry_delays_s or default_retry_delays_s)
        attempt, operation, items = push.attempts, push.operation, list(push.items)
        inbox_id = push.inbox_id

    started = time.monotonic()
    try:
        adapter = adapters(config)
        result = _call(adapter, operation, config.id, items, request_id=f"wheel-push-{push_id}-{attempt}")
    except (MarketplaceError, UnknownMarketplace) as exc:
        error: MarketplaceError | UnknownMarketplace | None = exc
    else:
        error = None
    elapsed_ms = round((time.monotonic() - started) * 1000)

    base = dict(channel_id=config.id, marketplace=config.marketplace, parent_id=parent_id, inbox_id=inbox_id)
    payload = {"push_id": push_id, "items": items, "attempts": attempt, "elapsed_ms": elapsed_ms}
    with sessions.begin() as session:
        push = session.get(Push, push_id, with_for_update=True)
        if push.status != "in_progress" or push.claimed_by != worker or push.attempts != attempt:
            # Our lease expired and another worker took over: its outcome is the one to log.
            return PushOutcome(push_id, "skipped")
        outcome_key = f"push:{push_id}:outcome"
        if error is None:
            push.status, push.last_error = "succeeded", None
            record(session, NewEvent(type="domain", name=f"{operation}/succeeded",
                                     payload={**payload, **result.summary}, dedupe_key=outcome_key, **base))
            return PushOutcome(push_id, "succeeded", config.marketplace)

        message = str(error)
        push.last_error = message
        if isinstance(error, TransientError) and attempt <= len(delays):
            delay = _jittered(max(delays[attempt - 1], error.retry_after or 0))
            push.status = "pending"
            push.lease_until = None
            push.next_attempt_at = func.now() + timedelta(seconds=delay)
            record(session, NewEvent(type="domain", name=f"{operation}/retrying", level="warning",
                                     payload={**payload, "error": message, "retry_in_s": delay},
                                     dedupe_key=f"push:{push_id}:attempt:{attempt}", **base))
            return PushOutcome(push_id, "retry", config.marketplace, retry_in_s=delay)

        push.status = "failed"
        if isinstance(error, PermanentError):
            name = f"{operation}/failed"
            details = {"error": message, "code": error.code, "http_status": error.status}
        else:
            name = "system/processing-failed"
            kind = "auth" if isinstance(error, AuthError) else "transient" if isinstance(error, TransientError) else "configuration"
            gave_up = f"; gave up after {attempt} attempts" if isinstance(error, TransientError) else ""
            details = {"error": message + gave_up, "kind": kind}
        event = record(session, NewEvent(type="domain" if name.startswith(operation) else "system",
                                         name=name, level="error", payload={**payload, **details},
                                         dedupe_key=outcome_key, **base))
        return PushOutcome(push_id, "failed", config.marketplace, alerts=[event])


def _call(
    adapter: MarketplaceAdapter, operation: str, channel_id: str, items: list[dict], *, request_id: str
) -> PushResult:
    if operation == "ranging":
        return adapter.range_items(
            [RangingItem(channel_id, item["sku"], item["ean"]) for item in items], request_id=request_id
        )
    raise PermanentError(f"operation {operation!r} is not supported yet")


def _jittered(delay: float) -> float:
    """Up to 20% either way, so that retries of many pushes do not arrive together."""
    return round(delay * random.uniform(0.8, 1.2), 3)
