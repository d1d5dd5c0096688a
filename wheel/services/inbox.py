"""Storing OMS messages durably, keyed by transport message id (DESIGN.md contract 1)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import literal_column, select
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


@dataclass(frozen=True)
class StoredMessage:
    inbox_id: int
    key: str
    created: bool
    # Still waiting for a worker: its task must be (re)sent.
    pending: bool


def store_batch(session: Session, messages: Sequence[IncomingMessage]) -> list[StoredMessage]:
    """Insert the messages (a redelivery is a no-op) in the session's transaction.

    Returns one StoredMessage per distinct key, in the order given.
    """
    rows: dict[str, dict[str, Any]] = {}
    for message in messages:
        digest = hashlib.sha256(message.body).hexdigest()
        key = message.message_id or _key_without_id(session, message, digest)
        rows.setdefault(
            key,
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
        index_elements=[table.c.transport_message_id],
        # A no-op update, so that RETURNING reports the existing row too.
        set_={"transport_message_id": statement.excluded.transport_message_id},
    ).returning(
        table.c.id,
        table.c.transport_message_id,
        table.c.status,
        literal_column("(xmax = 0)").label("created"),
    )
    found = {row.transport_message_id: row for row in session.execute(statement)}
    return [
        StoredMessage(
            inbox_id=found[key].id,
            key=key,
            created=bool(found[key].created),
            pending=found[key].status == "received",
        )
        for key in rows
    ]


def _key_without_id(session: Session, message: IncomingMessage, digest: str) -> str:
    """A key for a message its sender sent without an id.

    A first delivery is always a new message, even when its body repeats an earlier one (a price
    set back to an old value). A redelivery (the broker flags it) is matched to the latest stored
    message with the same body on the same queue, so it is stored once.
    """
    if message.redelivered:
        existing = session.execute(
            select(InboxMessage.transport_message_id)
            .where(
                InboxMessage.body_sha256 == digest,
                InboxMessage.queue == message.queue,
                InboxMessage.transport_message_id.startswith(BODY_KEY_PREFIX),
            )
            .order_by(InboxMessage.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if existing is not None:
            return existing
    return f"{BODY_KEY_PREFIX}{digest}:{uuid.uuid4()}"


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
