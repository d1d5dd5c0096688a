"""Publishing the outbox to the OMS queues (docs/contracts.md, contract 4).

A batch of pending rows is locked (`FOR UPDATE SKIP LOCKED`, in id order), put on the OMS queues
as persistent messages with each row's stable message id, committed on the transport, and only
then marked sent in the same database transaction that held the lock. A crash after the put is
committed and before the database commits leaves the rows pending: they are put again, with the
same message ids, and that is the only way the OMS can see a message twice.

One publisher at a time (a transaction-level advisory lock), so the OMS gets an order before its
cancellation: rows are published in id order, and a cancellation's row is always written after
its order's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.locks import PUBLISHER_LOCK, TRY_XACT_LOCK
from wheel.events import NewEvent, Recorded, record, record_many

# The ids of new rows are drawn first: each message id is derived from its row id.
NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence('outbox', 'id')) FROM generate_series(1, :n)")
# The rows as one JSON array (one statement whose text never changes, parsed once; a multi-row
# VALUES is compiled afresh for every number of rows), the bodies in base64.
INSERT_MESSAGES = text(
    """
    INSERT INTO outbox (id, kind, channel_id, order_id, queue, message_id, body, event_id)
    SELECT CAST(r->>'id' AS bigint), r->>'kind', r->>'channel_id', r->>'order_id', r->>'queue', r->>'message_id',
           decode(r->>'body', 'base64'), CAST(r->>'event_id' AS bigint)
      FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS t(r)
    """
)
PENDING = text(
    """
    SELECT id, kind, channel_id, order_id, queue, message_id, body, event_id
      FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    """
)
MARK_SENT = text("UPDATE outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY(:ids)")
MARK_ORDERS_SENT = text(
    """
    UPDATE orders o SET status = 'sent', sent_at = now()
      FROM unnest(CAST(:channels AS text[]), CAST(:orders AS text[])) AS t(channel_id, order_id)
     WHERE o.channel_id = t.channel_id AND o.order_id = t.order_id
    """
)
MARK_CANCELLATIONS_SENT = text("UPDATE cancellations SET status = 'sent' WHERE outbox_id = ANY(:ids)")
# A failed put or commit is counted on the oldest pending row.
COUNT_FAILURE = text(
    """
    UPDATE outbox SET attempts = attempts + 1, last_error = :e
     WHERE id = (SELECT min(id) FROM outbox WHERE sent_at IS NULL) RETURNING id, channel_id
    """
)
COUNT_PENDING = text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
STALE = text(
    """
    UPDATE outbox SET enqueued_at = now()
     WHERE id = (SELECT min(id) FROM outbox WHERE sent_at IS NULL
                  AND enqueued_at < now() - make_interval(secs => :deadline))
    RETURNING id
    """
)


@dataclass
class PublishResult:
    sent: int = 0
    busy: bool = False
    batches: int = 0
    alerts: list[Recorded] = field(default_factory=list)


class Outlet:
    """Where the publisher puts messages: a transport (AMQP, IBM MQ) seen through its calls.
    `put_many(batch)` takes a list of `Put`s and returns once every one is durable (the AMQP
    transport waits for their confirms together); without it, each is `put` in turn."""

    def __init__(self, put: Callable[..., None], commit: Callable[[], None],
                 put_many: Callable[[list[Put]], None] | None = None):
        self.put, self.commit = put, commit
        self.put_many = put_many or self._each

    def _each(self, batch: list[Put]) -> None:
        for m in batch:
            self.put(m.queue, m.body, message_id=m.message_id, headers=m.headers)


@dataclass(frozen=True)
class Put:
    """One message for the outlet (the fields of bridge.transports.base.Outgoing, which wheel/ does not import)."""

    queue: str
    body: bytes
    message_id: str
    headers: dict[str, Any] | None = None


def message_id_for(outbox_id: int) -> str:
    """The OMS message id of an outbox row: stable, so a re-put after a crash carries the same id.
    24 characters, the size of an IBM MQ MsgId."""
    return f"WHEEL-OUTBOX-{outbox_id:011d}"


def add_messages(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Write outbox rows (kind, channel_id, order_id, queue, body, event_id) in one statement;
    their ids, in order. The message id is derived from the row id, so it is drawn first."""
    if not rows:
        return []
    ids = list(session.execute(NEXT_IDS, {"n": len(rows)}).scalars())
    session.execute(INSERT_MESSAGES, {"rows": json.dumps([{
        "id": outbox_id, "kind": row["kind"], "channel_id": row["channel_id"], "order_id": row["order_id"],
        "queue": row["queue"], "message_id": message_id_for(outbox_id), "body": base64.b64encode(row["body"]).decode(),
        "event_id": row.get("event_id"),
    } for outbox_id, row in zip(ids, rows, strict=True)])})
    return ids


def publish_pending(sessions: sessionmaker[Session], outlet: Outlet, *, batch_size: int,
                    max_batches: int = 1000) -> PublishResult:
    """Publish every pending row, a batch at a time. Raises what the transport raises (nothing is
    marked sent for the batch in hand); the caller retries."""
    result = PublishResult()
    for _ in range(max_batches):
        with sessions.begin() as session:
            if not session.execute(TRY_XACT_LOCK, {"k": PUBLISHER_LOCK}).scalar_one():
                result.busy = True
                return result
            rows = session.execute(PENDING, {"limit": batch_size}).all()
            if not rows:
                return result
            outlet.put_many([Put(row.queue, bytes(row.body), row.message_id,
                                 {"wheel-kind": row.kind, "wheel-channel": row.channel_id, "wheel-order": row.order_id})
                             for row in rows])
            outlet.commit()
            _mark_sent(session, rows)
            result.sent += len(rows)
            result.batches += 1
    return result


def _mark_sent(session: Session, rows: list[Any]) -> None:
    ids = [row.id for row in rows]
    session.execute(MARK_SENT, {"ids": ids})
    orders = [row for row in rows if row.kind == "order"]
    if orders:
        session.execute(
            MARK_ORDERS_SENT,
            {"channels": [r.channel_id for r in orders], "orders": [r.order_id for r in orders]},
        )
    cancellations = [row.id for row in rows if row.kind == "cancellation"]
    if cancellations:  # a cancellation's lines point at its own outbox row only (cancellations.outbox_id has no index)
        session.execute(MARK_CANCELLATIONS_SENT, {"ids": cancellations})
    record_many(session, [NewEvent(
        type="domain", name=f"{row.kind}/sent-to-oms", parent_id=row.event_id, channel_id=row.channel_id,
        payload={"order_id": row.order_id, "queue": row.queue, "message_id": row.message_id},
        dedupe_key=f"outbox:{row.id}:sent",
    ) for row in rows])


def note_failure(sessions: sessionmaker[Session], error: str, *, attempt: int) -> Recorded | None:
    """A put or commit failed: count it on the oldest pending row and say so (one event per
    failing attempt of a task, so a long outage is visible without flooding the log)."""
    with sessions.begin() as session:
        oldest = session.execute(
            COUNT_FAILURE,
            {"e": error[:2000]},
        ).first()
        if oldest is None:
            return None
        pending = session.execute(COUNT_PENDING).scalar_one()
        return record(session, NewEvent(
            type="system", name="system/oms-publish-failed", level="error" if attempt >= 3 else "warning",
            payload={"error": error, "pending": pending, "attempt": attempt,
                     "fix": "check the OMS queue manager or broker (WHEEL_OMS_URL); publishing resumes by itself"},
        ))


def stale_pending(sessions: sessionmaker[Session], *, deadline_s: float) -> bool:
    """Whether rows have waited past the deadline (their publish task was lost): publish again."""
    with sessions.begin() as session:
        return session.execute(STALE, {"deadline": deadline_s}).first() is not None

