"""Writing the event log: one row per thing that happened, linked to the OMS message that caused it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from wheel.db.models import AlertRow, Event
from wheel.logs import log_context

log = logging.getLogger("wheel.events")

# The next event id (events.id is an identity column: its sequence).
NEXT_EVENT_ID = func.nextval(func.pg_get_serial_sequence("events", "id"))
# record_many's insert: the events as one JSON array, in their order (one parameter: a text array
# of JSON payloads would cost more to quote, in psycopg, than the insert costs to run); an id
# reserved beforehand is kept.
INSERT_EVENTS = text(
    """
    INSERT INTO events (id, type, name, level, parent_id, channel_id, marketplace, inbox_id, payload, dedupe_key)
    SELECT coalesce(CAST(r->>'id' AS bigint), nextval(pg_get_serial_sequence('events', 'id'))), r->>'type',
           r->>'name', r->>'level', CAST(r->>'parent_id' AS bigint), r->>'channel_id', r->>'marketplace',
           CAST(r->>'inbox_id' AS bigint), r->'payload', r->>'dedupe_key'
      FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS t(r, n)
     ORDER BY t.n
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, dedupe_key
    """
)

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True)
class NewEvent:
    type: str
    name: str
    level: str = "info"
    parent_id: int | None = None
    channel_id: str | None = None
    marketplace: str | None = None
    inbox_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    # Same key, same event: a redelivered task that records it again writes nothing.
    dedupe_key: str | None = None
    # An alert for the ops team (a row in the alerts outbox, written with the event). By default
    # every error, and nothing else; a warning that needs someone says alert=True.
    alert: bool | None = None
    # The id to record it under, reserved beforehand with NEXT_EVENT_ID (so that events recorded
    # with it in one record_many can name it as their parent); None: the next one.
    id: int | None = None

    @property
    def alerts(self) -> bool:
        return self.level == "error" if self.alert is None else self.alert


@dataclass(frozen=True)
class Recorded:
    id: int
    created: bool  # False when an event with the same dedupe key was already there
    event: NewEvent


def record(session: Session, event: NewEvent) -> Recorded:
    """Insert the event in the session's transaction; idempotent by `dedupe_key`."""
    values = {
        "type": event.type,
        "name": event.name,
        "level": event.level,
        "parent_id": event.parent_id,
        "channel_id": event.channel_id,
        "marketplace": event.marketplace,
        "inbox_id": event.inbox_id,
        "payload": _clean(event.payload),
        "dedupe_key": event.dedupe_key,
    }
    table = Event.__table__
    statement = insert(table).values(**values).returning(table.c.id)
    if event.dedupe_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=[table.c.dedupe_key])
    # Core, not the ORM: events are written often, and nothing needs them as objects.
    new_id = session.connection().execute(statement).scalar_one_or_none()
    if new_id is None:
        existing = session.execute(
            select(Event.id).where(Event.dedupe_key == event.dedupe_key)
        ).scalar_one()
        return Recorded(existing, False, event)
    with log_context(event_id=new_id):
        log.log(
            LEVELS[event.level],
            "%s channel=%s parent=%s %s",
            event.name,
            event.channel_id or "-",
            event.parent_id or "-",
            _summary(event.payload),
        )
    _outbox_alerts(session, [(new_id, event)])
    return Recorded(new_id, True, event)


def _outbox_alerts(session: Session, created: list[tuple[int, NewEvent]]) -> None:
    """The alert rows of new events, in the transaction that records them: an alert exists exactly
    when its event does, and a Slack outage delays it without blocking anything
    (wheel/services/alerts.py delivers them)."""
    rows = [{"event_id": event_id, "name": e.name, "channel_id": e.channel_id, "level": e.level}
            for event_id, e in created if e.alerts]
    if rows:
        session.connection().execute(insert(AlertRow.__table__).values(rows))


def _clean(value: Any) -> Any:
    """JSON that Postgres accepts: jsonb refuses the NUL character, which hostile input carries."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _summary(payload: dict[str, Any]) -> str:
    if "error" in payload:
        return f"error={payload['error']!r}"
    return ""


def record_many(session: Session, events: list[NewEvent]) -> list[Recorded]:
    """Insert many events in one statement, in the session's transaction. Each must have a
    dedupe key; an event whose key is there already is not written again (created=False)."""
    if not events:
        return []
    if any(event.dedupe_key is None for event in events):
        raise ValueError("record_many needs a dedupe key on every event")
    # One statement whose text never changes (the rows as one JSON parameter): Postgres and
    # SQLAlchemy parse it once, where a multi-row VALUES is compiled afresh for every page size and
    # costs more to build than to run (a pull stores thousands of events a minute).
    rows = json.dumps([{
        "id": e.id, "type": e.type, "name": e.name, "level": e.level, "parent_id": e.parent_id,
        "channel_id": e.channel_id, "marketplace": e.marketplace, "inbox_id": e.inbox_id,
        "payload": _clean(e.payload), "dedupe_key": e.dedupe_key,
    } for e in events])
    created = {key: event_id for event_id, key in session.connection().execute(INSERT_EVENTS, {"rows": rows})}
    missing = [e.dedupe_key for e in events if e.dedupe_key not in created]
    existing = {row.dedupe_key: row.id for row in session.execute(
        select(Event.dedupe_key, Event.id).where(Event.dedupe_key.in_(missing)))} if missing else {}
    out = []
    for event in events:
        if event.dedupe_key in created:
            with log_context(event_id=created[event.dedupe_key]):
                log.log(LEVELS[event.level], "%s channel=%s parent=%s %s", event.name, event.channel_id or "-",
                        event.parent_id or "-", _summary(event.payload))
            out.append(Recorded(created[event.dedupe_key], True, event))
        else:
            out.append(Recorded(existing[event.dedupe_key], False, event))
    _outbox_alerts(session, [(r.id, r.event) for r in out if r.created])
    return out
