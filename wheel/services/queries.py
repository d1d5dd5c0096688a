"""Read-side queries for the CLI: events, inbox messages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from wheel.db.models import Event


def latest_events(
    session: Session,
    *,
    type: str | None = None,
    name: str | None = None,
    channel_id: str | None = None,
    parent_id: int | None = None,
    limit: int = 50,
) -> list[Event]:
    """The newest events first. `name` may end with `*` to match a prefix (`ranging/*`)."""
    query = select(Event)
    if type:
        query = query.where(Event.type == type)
    if name:
        query = query.where(Event.name.startswith(name[:-1]) if name.endswith("*") else Event.name == name)
    if channel_id:
        query = query.where(Event.channel_id == channel_id)
    if parent_id is not None:
        query = query.where((Event.parent_id == parent_id) | (Event.id == parent_id))
    return list(session.execute(query.order_by(Event.id.desc()).limit(limit)).scalars())
