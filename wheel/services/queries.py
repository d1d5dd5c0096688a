"""Read-side queries for the CLI: events, inbox messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from wheel.db.models import Event

# The levels, least severe first: `--level warning` shows warnings and errors.
LEVELS = ("debug", "info", "warning", "error")


def latest_events(
    session: Session,
    *,
    type: str | None = None,
    name: str | None = None,
    channel_id: str | None = None,
    parent_id: int | None = None,
    level: str | None = None,
    since: datetime | None = None,
    sku: str | None = None,
    limit: int = 50,
) -> list[Event]:
    """The newest events first. `name` may end with `*` to match a prefix (`ranging/*`); `level` is
    the least severe level shown; `sku` finds the events whose payload names the SKU, through the
    index on `event_skus(payload)` (the function the migration a9c8e7f6d5b4 defines)."""
    query = select(Event)
    if type:
        query = query.where(Event.type == type)
    if name:
        query = query.where(Event.name.startswith(name[:-1]) if name.endswith("*") else Event.name == name)
    if channel_id:
        query = query.where(Event.channel_id == channel_id)
    if parent_id is not None:
        query = query.where((Event.parent_id == parent_id) | (Event.id == parent_id))
    if level:
        query = query.where(Event.level.in_(LEVELS[LEVELS.index(level):]))
    if since is not None:
        query = query.where(Event.created_at >= since)
    if sku:
        # The very expression the index is built on, so that Postgres can use it.
        query = query.where(func.event_skus(Event.payload, type_=ARRAY(Text)).contains(literal([sku], ARRAY(Text))))
    return list(session.execute(query.order_by(Event.id.desc()).limit(limit)).scalars())


LATEST_ORDERS = text(
    """
    SELECT o.channel_id AS channel, o.order_id, o.status, o.lines, o.total, o.received_at, o.sent_at, o.failure,
           (SELECT string_agg(c.line_id || ':' || c.status, ' ' ORDER BY c.id) FROM cancellations c
             WHERE c.channel_id = o.channel_id AND c.order_id = o.order_id) AS cancelled
      FROM orders o
     WHERE (CAST(:channel AS text) IS NULL OR o.channel_id = :channel)
       AND (CAST(:status AS text) IS NULL OR o.status = :status)
    UNION ALL
    SELECT c.channel_id, c.order_id, c.status, count(*), NULL, min(c.received_at), NULL,
           CASE c.status WHEN 'held' THEN 'cancellation waiting for its order'
                ELSE 'cancellation held too long (cancellation/expired); it still follows the order if it comes' END,
           string_agg(c.line_id, ' ')
      FROM cancellations c
     WHERE c.status IN ('held', 'expired') AND CAST(:status AS text) = 'held'
       AND (CAST(:channel AS text) IS NULL OR c.channel_id = :channel)
     GROUP BY c.channel_id, c.order_id, c.status
     ORDER BY received_at DESC
     LIMIT :limit
    """
)


def latest_orders(session: Session, *, channel_id: str | None, status: str | None, limit: int) -> list[dict]:

    rows = session.execute(LATEST_ORDERS, {"channel": channel_id, "status": status, "limit": limit}).mappings()
    return [dict(row) for row in rows]
