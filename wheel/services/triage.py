"""Triage of stored OMS messages, for `wheelctl messages`: find them, read one with what it caused,
and replay many at once.

Every OMS message is kept raw in the `inbox` table (docs/contracts.md, contract 6), whatever became
of it. A replay goes through `replay` in wheel/services/replay.py, one message at a time, so each
keeps the place of the message it replays and never overwrites a newer value (contract 2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Event, InboxMessage
from wheel.domain import group_by_channel
from wheel.oms.ranging import DECODERS
from wheel.oms.xml import OmsMessageError
from wheel.services.replay import REPLAY_KEY_PREFIX, replay

# The columns a listing shows (the body stays in the database).
_LISTED = (InboxMessage.id, InboxMessage.queue, InboxMessage.status, InboxMessage.size, InboxMessage.received_at,
           InboxMessage.processed_at, InboxMessage.attempts, InboxMessage.last_error, InboxMessage.version,
           InboxMessage.transport_message_id, InboxMessage.headers)

# A message names its channel in each item's ChannelID attribute (wheel/oms/ranging.py). Matched in
# the raw body, so that a message that could not be parsed is found too.
_NAMES_CHANNEL = text(
    "(position(CAST(:channel_dq AS bytea) IN inbox.body) > 0 OR position(CAST(:channel_sq AS bytea) IN inbox.body) > 0)"
)

# Every event a message caused hangs under its `oms` event (docs/architecture.md, contract 6).
EVENT_TREE = text(
    """
    WITH RECURSIVE tree AS (
        SELECT id FROM events WHERE id = :root
        UNION
        SELECT e.id FROM events e JOIN tree t ON e.parent_id = t.id
    )
    SELECT id FROM tree ORDER BY id LIMIT :limit
    """
)


@dataclass(frozen=True)
class MessageFilter:
    failed: bool = False  # only messages that failed
    queue: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    channel: str | None = None  # messages whose body names this channel
    originals: bool = False  # only messages from the OMS, not replays of them
    limit: int = 50


@dataclass(frozen=True)
class Listed:
    id: int
    queue: str
    status: str
    size: int
    received_at: datetime
    processed_at: datetime | None
    attempts: int
    last_error: str | None
    replay_of: int | None  # the message this one replays
    replays: tuple[tuple[int, str], ...] = ()  # (id, status) of its replays

    def as_dict(self) -> dict:
        return {"id": self.id, "queue": self.queue, "status": self.status, "bytes": self.size,
                "received_at": self.received_at.isoformat(), "processed_at": self.processed_at and self.processed_at.isoformat(),
                "attempts": self.attempts, "last_error": self.last_error, "replay_of": self.replay_of,
                "replays": [{"id": i, "status": s} for i, s in self.replays]}


@dataclass(frozen=True)
class Parsed:
    """What the message's body holds, parsed again now with today's rules."""

    operation: str | None
    items: int = 0
    channels: dict[str, int] = field(default_factory=dict)  # items per channel
    error: str | None = None


@dataclass(frozen=True)
class Detail:
    message: Listed
    body: bytes
    parsed: Parsed
    events: list[Event]


def list_messages(session: Session, where: MessageFilter) -> list[Listed]:
    """Stored messages matching `where`, newest first, each with its replays."""
    query = select(*_LISTED)
    if where.failed:
        query = query.where(InboxMessage.status == "failed")
    if where.queue:
        query = query.where(InboxMessage.queue == where.queue)
    if where.since:
        query = query.where(InboxMessage.received_at >= where.since)
    if where.until:
        query = query.where(InboxMessage.received_at < where.until)
    if where.originals:
        query = query.where(InboxMessage.transport_message_id.not_like(f"{REPLAY_KEY_PREFIX}%"))
    if where.channel:
        query = query.where(_NAMES_CHANNEL.bindparams(
            bindparam("channel_dq", f'ChannelID="{where.channel}"'.encode()),
            bindparam("channel_sq", f"ChannelID='{where.channel}'".encode())))
    rows = session.execute(query.order_by(InboxMessage.id.desc()).limit(where.limit)).all()
    replays = _replays(session, rows)
    return [_listed(row, replays.get(row.id, ())) for row in rows]


def failed_still(messages: Sequence[Listed]) -> list[Listed]:
    """The failed messages no replay has processed since."""
    return [m for m in messages if m.status == "failed" and not any(s == "processed" for _, s in m.replays)]


def message_detail(session: Session, inbox_id: int, *, operation_for_queue: Callable[[str], str | None],
                   max_message_bytes: int, event_limit: int = 500) -> Detail | None:
    """One message: its body, what it parses to today, and the events it caused."""
    message = session.get(InboxMessage, inbox_id)
    if message is None:
        return None
    row = session.execute(select(*_LISTED).where(InboxMessage.id == inbox_id)).one()
    events: list[Event] = []
    if message.event_id is not None:
        ids = list(session.execute(EVENT_TREE, {"root": message.event_id, "limit": event_limit}).scalars())
        events = list(session.execute(select(Event).where(Event.id.in_(ids)).order_by(Event.id)).scalars())
    return Detail(_listed(row, _replays(session, [row]).get(inbox_id, ())), message.body,
                  parse(message.queue, message.body, operation_for_queue, max_message_bytes), events)


def parse(queue: str, body: bytes, operation_for_queue: Callable[[str], str | None], max_bytes: int) -> Parsed:
    """Parse a body as the workers do (wheel/services/oms_messages.py), and count what it names."""
    operation = operation_for_queue(queue)
    decoder = DECODERS.get(operation or "")
    if decoder is None:
        return Parsed(operation, error=f"queue {queue!r} is not one of the OMS queues Wheel reads (see WHEEL_QUEUE_*)")
    try:
        items = decoder(body, max_bytes=max_bytes)
    except OmsMessageError as exc:
        return Parsed(operation, error=str(exc))
    return Parsed(operation, len(items), {channel: len(found) for channel, found in group_by_channel(items).items()})


def replay_many(sessions: sessionmaker[Session], inbox_ids: Sequence[int],
                send_process: Callable[[int], None]) -> list[tuple[int, int]]:
    """Replay each message (stored again in its own place), oldest first, and send each replay to
    the workers once it is committed; the (original, replay) ids."""
    done = []
    for inbox_id in sorted(inbox_ids):
        new_id = replay(sessions, inbox_id)
        send_process(new_id)
        done.append((inbox_id, new_id))
    return done


def _replays(session: Session, rows) -> dict[int, tuple[tuple[int, str], ...]]:
    """The replays of each row, found through the version index: a replay has its original's version."""
    if not rows:
        return {}
    places = {row.version if row.version is not None else row.id for row in rows}
    found = session.execute(
        select(InboxMessage.id, InboxMessage.status, InboxMessage.headers["replay_of"].astext.label("replay_of"))
        .where(InboxMessage.version.in_(places), InboxMessage.transport_message_id.like(f"{REPLAY_KEY_PREFIX}%"))
        .order_by(InboxMessage.id)
    ).all()
    out: dict[int, list[tuple[int, str]]] = {}
    for replay_row in found:
        if replay_row.replay_of is not None:
            out.setdefault(int(replay_row.replay_of), []).append((replay_row.id, replay_row.status))
    return {key: tuple(value) for key, value in out.items()}


def _listed(row, replays: tuple[tuple[int, str], ...]) -> Listed:
    replay_of = (row.headers or {}).get("replay_of") if row.transport_message_id.startswith(REPLAY_KEY_PREFIX) else None
    return Listed(row.id, row.queue, row.status, row.size, row.received_at, row.processed_at, row.attempts,
                  row.last_error, int(replay_of) if replay_of is not None else None, replays)
