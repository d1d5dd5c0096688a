"""Storing OMS messages durably, keyed by queue and transport message id (docs/contracts.md, contract 1).

The key is per queue: an OMS that sets its own document ids may use one id on two queues, and
those are two messages. A message whose sender set no id gets a key of its own (see
`_key_without_id`); where a broker cannot say whether such a message is new, it is stored again
rather than dropped, since a duplicate is harmless (its version is newer, and its value the same)
and a drop loses a value for good.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from wheel.db.models import InboxMessage

# A message without a transport id gets a key of this form.
BODY_KEY_PREFIX = "body-sha256:"


@dataclass(frozen=True)
class IncomingMessage:
    queue: str
    body: bytes
    message_id: str | None
    redelivered: bool = False
    headers: dict[str, Any] = field(default_factory=dict)
    # For a message without an id: the key to store it under when it is not matched to an earlier
    # delivery, so that storing the same delivery again (a retry) finds the same row.
    fallback_key: str | None = None


@dataclass(frozen=True)
class StoredMessage:
    inbox_id: int
    key: str
    created: bool
    # Still waiting for a worker: its task must be (re)sent.
    pending: bool


def new_key(body: bytes) -> str:
    """A fresh key for a message sent without an id."""
    return f"{BODY_KEY_PREFIX}{hashlib.sha256(body).hexdigest()}:{uuid.uuid4()}"


def store_batch(session: Session, messages: Sequence[IncomingMessage]) -> list[StoredMessage]:
    """Insert the messages (a redelivery is a no-op) in the session's transaction.

    Returns one StoredMessage per distinct (queue, key), in the order given.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    matched: set[int] = set()
    for message in messages:
        digest = hashlib.sha256(message.body).hexdigest()
        key = message.message_id or _key_without_id(session, message, digest, matched)
        rows.setdefault(
            (message.queue, key),
            {
                "queue": message.queue,
                "transport_message_id": key,
                "body": message.body,
                "body_sha256": digest,
                "size": len(message.body),
                "headers": _jsonable(message.headers),
            },
        )
    if not rows:
        return []
    table = InboxMessage.__table__
    statement = insert(table).values(list(rows.values()))
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.queue, table.c.transport_message_id],
        # A no-op update, so that RETURNING reports the existing row too.
        set_={"transport_message_id": statement.excluded.transport_message_id},
    ).returning(
        table.c.id,
        table.c.queue,
        table.c.transport_message_id,
        table.c.status,
        literal_column("(xmax = 0)").label("created"),
    )
    found = {(row.queue, row.transport_message_id): row for row in session.execute(statement)}
    return [
        StoredMessage(
            inbox_id=found[where].id,
            key=where[1],
            created=bool(found[where].created),
            pending=found[where].status == "received",
        )
        for where in rows
    ]


def mark_acked(session: Session, inbox_ids: Sequence[int]) -> None:
    """Record that the bridge is about to acknowledge these messages to their broker.

    Called before the acknowledgement, not after: a crash in between then makes a redelivery of
    a message without an id a new row (a harmless duplicate), where the other order could leave a
    row looking unacknowledged for ever, to swallow a later message with the same body.
    """
    if inbox_ids:
        session.execute(
            update(InboxMessage)
            .where(InboxMessage.id.in_(list(inbox_ids)), InboxMessage.acked_at.is_(None))
            .values(acked_at=func.now())
        )


def _key_without_id(session: Session, message: IncomingMessage, digest: str, matched: set[int]) -> str:
    """A key for a message its sender sent without an id.

    A first delivery is always a new message, even when its body repeats an earlier one (a price
    set back to an old value). A redelivery (the broker flags it) is the same message as a row
    stored but never acknowledged, with the same body on the same queue: the bridge stored it and
    lost its connection (or crashed) before the acknowledgement, so the broker delivers it again.
    A row that was acknowledged is never matched: that message left its queue, and what the
    broker redelivers is another one, never stored, that was in the bridge's hands (prefetched)
    when it lost its connection. Each row is matched at most once per batch, oldest first, as
    the broker redelivers in queue order.
    """
    if message.redelivered:
        row = session.execute(
            select(InboxMessage.id, InboxMessage.transport_message_id)
            .where(
                InboxMessage.queue == message.queue,
                InboxMessage.body_sha256 == digest,
                InboxMessage.transport_message_id.startswith(BODY_KEY_PREFIX),
                InboxMessage.acked_at.is_(None),
                InboxMessage.id.notin_(matched),
            )
            .order_by(InboxMessage.id)
            .limit(1)
        ).first()
        if row is not None:
            matched.add(row.id)
            return row.transport_message_id
    return message.fallback_key or f"{BODY_KEY_PREFIX}{digest}:{uuid.uuid4()}"


def _jsonable(headers: dict[str, Any]) -> dict[str, Any]:
    """Transport headers as JSON Postgres accepts (no NUL characters, no bytes)."""
    out: dict[str, Any] = {}
    for key, value in headers.items():
        if not isinstance(value, (str, int, float, bool, type(None))):
            value = repr(value)
        if isinstance(value, str):
            value = value.replace("\x00", "\ufffd")
        out[str(key).replace("\x00", "\ufffd")] = value
    return out
