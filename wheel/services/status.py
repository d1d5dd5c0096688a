"""What `wheelctl status` shows, read from Postgres: per channel, what has not reached the
marketplace, the last pulls and the cancellations held; the outboxes; beat; the open health alerts.

Times are UTC datetimes here; the command formats them for people (wheel/timefmt.py). The Celery
queues' figures come from the broker and are added by the command (workers/health.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from wheel.services import health
from wheel.services.schedules import utcnow

# The oldest waiting listing is the first entry of ix_listings_claim; the count reads a partial
# index of dirty listings only. (A count(*) OVER () beside the oldest read every dirty row from the
# table: about 1 s with 100,000 dirty listings, 40 ms this way; `make bench BENCH=scale`.)
CHANNELS = text(
    """
    SELECT c.id, c.marketplace, c.enabled, c.shadow,
           u.sku AS oldest_sku, u.dirty_since AS oldest_since, coalesce(n.skus, 0) AS unsynced,
           coalesce(h.held, 0) AS held, h.oldest AS held_since
      FROM channels c
      LEFT JOIN LATERAL (SELECT l.sku, l.dirty_since FROM listings l
                          WHERE l.channel_id = c.id AND l.dirty ORDER BY l.dirty_since LIMIT 1) u ON true
      LEFT JOIN LATERAL (SELECT count(*) AS skus FROM listings l WHERE l.channel_id = c.id AND l.dirty) n ON true
      LEFT JOIN LATERAL (SELECT count(*) AS held, min(received_at) AS oldest FROM cancellations x
                          WHERE x.channel_id = c.id AND x.status = 'held') h ON true
     ORDER BY c.id
    """
)
PULLS = text(
    """
    SELECT s.channel_id, s.job, s.enabled, s.cron, s.last_started_at, s.last_finished_at, s.last_outcome,
           s.last_error, s.next_run_at
      FROM schedules s ORDER BY s.channel_id, s.job
    """
)


def snapshot(session: Session, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    pulls: dict[str, list[dict[str, Any]]] = {}
    for row in session.execute(PULLS):
        pulls.setdefault(row.channel_id, []).append({
            "job": row.job, "enabled": row.enabled, "cron": row.cron,
            "last_started_at": row.last_started_at, "last_finished_at": row.last_finished_at,
            "outcome": row.last_outcome, "error": row.last_error, "next_run_at": row.next_run_at,
        })
    channels = [{
        "id": row.id, "marketplace": row.marketplace, "enabled": row.enabled, "shadow": row.shadow,
        "unsynced": row.unsynced, "oldest_unsynced_sku": row.oldest_sku, "oldest_unsynced_since": row.oldest_since,
        "oldest_unsynced_age_s": _age(now, row.oldest_since),
        "held_cancellations": row.held, "held_since": row.held_since,
        "pulls": pulls.get(row.id, []),
    } for row in session.execute(CHANNELS)]
    outboxes = {name: {"waiting": waiting, "oldest": oldest, "oldest_age_s": _age(now, oldest)}
                for name, (oldest, waiting) in health.outbox_ages(session).items()}
    tick = health.heartbeat(session)
    alerts = [{"id": a.id, "name": a.name, "subject": a.subject, "opened_at": a.opened_at,
               "open_for_s": _age(now, a.opened_at), "message": a.detail.get("message"), "look": a.detail.get("look"),
               "event_id": a.event_id} for a in health.open_alerts(session)]
    return {"at": now, "channels": channels, "outboxes": outboxes,
            "beat": {"last_tick": tick, "age_s": _age(now, tick)}, "alerts": alerts}


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 1)


def jsonable(value: Any) -> Any:
    """The snapshot as JSON: datetimes in ISO 8601 (UTC)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value
