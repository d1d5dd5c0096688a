"""Turning one stored OMS message into events and desired state.

The message is logged as an `oms` event (its id reserved first), the parent of everything it causes. A bad message
gets a `system/parsing-failed` event and stays in the inbox for an operator to fix and replay. A
good one updates the desired state of each (channel, SKU) it names; the channels to push to are
returned for the caller to dispatch after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import bindparam, func, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Channel, Event, InboxMessage
from wheel.domain import DERANGING, INVENTORY, PRICING, RANGING, group_by_channel
from wheel.events import NEXT_EVENT_ID, NewEvent, Recorded, record, record_many
from wheel.oms.ranging import DECODERS
from wheel.oms.xml import OmsMessageError
from wheel.services import desired_state

# The `oms` event that logs a message, by the operation its queue carries.
OMS_EVENT_NAMES = {
    RANGING: "oms/items-ranged",
    DERANGING: "oms/items-deranged",
    INVENTORY: "oms/inventory-updated",
    PRICING: "oms/prices-updated",
}
# Enough of the raw message in the event for the dashboard; the inbox keeps all of it.
EXCERPT_BYTES = 4096

_inbox = InboxMessage.__table__
_events = Event.__table__
# The message, taken if it is still `received` (a concurrent take waits for the row's lock, then
# finds it taken): `processed` with its attempt counted, the outcome of nearly every message (a
# failure sets it aside after, in the same transaction). It returns what processing needs: the
# message; the id of its oms event, reserved here so that the oms event and the events it causes go
# in one insert (the id of the oms event already there, if one is); every channel (a handful of
# rows: the ones the message names are looked up in them); and, with set_config(..., true), this
# transaction's commit made not to wait for the disk (see process_message): it is
# `SET LOCAL synchronous_commit = off` as a function
# (https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SET).
TAKE_MESSAGE = (
    update(_inbox)
    .where(_inbox.c.id == bindparam("inbox_id"), _inbox.c.status == "received")
    .values(status="processed", attempts=_inbox.c.attempts + 1, processed_at=func.now(),
            event_id=func.coalesce(
                select(_events.c.id).where(_events.c.dedupe_key == bindparam("oms_key")).scalar_subquery(),
                NEXT_EVENT_ID))
    .returning(_inbox.c.id, _inbox.c.version, _inbox.c.queue, _inbox.c.transport_message_id, _inbox.c.body,
               _inbox.c.size, _inbox.c.event_id,
               select(func.json_agg(func.json_build_array(Channel.id, Channel.marketplace, Channel.enabled)))
               .scalar_subquery().label("channels"),
               func.set_config("synchronous_commit", "off", true()).label("async_commit"))
)
# A message that could not be processed: set aside for an operator to fix and replay.
SET_ASIDE = (
    update(_inbox).where(_inbox.c.id == bindparam("inbox_id")).values(status="failed", last_error=bindparam("error"))
)


class _Channel(NamedTuple):
    id: str
    marketplace: str
    enabled: bool


@dataclass
class ProcessResult:
    inbox_id: int
    oms_event_id: int | None = None
    channels: list[tuple[str, str]] = field(default_factory=list)  # (channel id, marketplace) to sync
    alerts: list[Recorded] = field(default_factory=list)
    skipped: bool = False


def process_message(
    sessions: sessionmaker[Session],
    inbox_id: int,
    *,
    operation_for_queue: Callable[[str], str | None],
    max_message_bytes: int,
) -> ProcessResult:
    """Parse the message and record what it wants; idempotent (a processed message is left alone).

    Four statements per message, whatever its size, in one transaction: the message taken (with
    its channels), its desired state (two: desired_state.apply), and its oms event with the events
    it causes in one insert; a message that fails is set aside in one more.
    """
    result = ProcessResult(inbox_id)
    with sessions.begin() as session:
        # Safe without waiting for the disk: if Postgres crashes and loses this commit, the message
        # is still `received` and the sweeper processes it again; and any later synchronous commit
        # (a push settling) flushes this one first, the log being sequential.
        connection = session.connection()  # Core statements: the ORM's execute would only add its overhead
        message = connection.execute(TAKE_MESSAGE, {"inbox_id": inbox_id, "oms_key": _oms_key(inbox_id)}).one_or_none()
        if message is None:  # gone, or processed or failed already
            result.skipped = True
            return result
        operation = operation_for_queue(message.queue)
        oms_event = NewEvent(type="oms", name=OMS_EVENT_NAMES.get(operation or "", "oms/message-received"),
                             inbox_id=message.id, payload=_oms_payload(message), dedupe_key=_oms_key(message.id),
                             id=message.event_id)
        result.oms_event_id = message.event_id
        errors: list[NewEvent] = []
        others: list[NewEvent] = []

        def system_error(name: str, payload: dict, channel_id: str | None = None) -> None:
            key = f"inbox:{message.id}:{name}" + (f":{channel_id}" if channel_id else "")
            errors.append(NewEvent(type="system", name=name, level="error", parent_id=message.event_id,
                                   channel_id=channel_id, inbox_id=message.id, payload=payload, dedupe_key=key))

        error = _apply(session, message, operation, message.event_id, max_message_bytes, result, system_error, others)
        if error is not None:
            system_error(error[0], {"error": error[1], "queue": message.queue, "inbox_id": message.id})
            connection.execute(SET_ASIDE, {"inbox_id": message.id, "error": error[1]})
        recorded = record_many(session, [oms_event, *errors, *others])
        result.alerts = recorded[1:1 + len(errors)]
    return result


def _oms_key(inbox_id: int) -> str:
    return f"inbox:{inbox_id}:oms"


def _apply(session: Session, message, operation: str | None, oms_event_id: int, max_message_bytes: int,
           result: ProcessResult, system_error: Callable[..., None], events: list[NewEvent]) -> tuple[str, str] | None:
    """Parse the message and record its desired state: the channels to sync in `result`, the events
    it causes in `events` (system_error: the ones to alert on); (event name, error) if it failed."""
    decoder = DECODERS.get(operation or "")
    if decoder is None:
        return ("system/processing-failed",
                f"queue {message.queue!r} is not one of the OMS queues Wheel reads (see WHEEL_QUEUE_*)")
    try:
        items = decoder(message.body, max_bytes=max_message_bytes)
    except OmsMessageError as exc:
        return "system/parsing-failed", str(exc)

    by_channel = group_by_channel(items)
    channels = {channel.id: channel for channel in map(_Channel._make, message.channels or [])}
    known = {}
    for channel_id, channel_items in by_channel.items():
        channel = channels.get(channel_id)
        if channel is None or not channel.enabled:
            name = "system/channel-not-found" if channel is None else "system/channel-disabled"
            reason = "is not configured" if channel is None else "is disabled"
            system_error(
                name,
                {"error": f"channel {channel_id!r} {reason}; its items were not sent",
                 "items": [item.as_dict() for item in channel_items]},
                channel_id=channel_id,
            )
            continue
        known[channel_id] = channel_items
        result.channels.append((channel_id, channel.marketplace))
    # Its place in the OMS's order: a replay keeps the place of the message it replays.
    version = message.version if message.version is not None else message.id
    superseded = desired_state.apply(session, operation, known, version)
    if superseded:
        events.extend(_superseded_events(channels, superseded, version, message.id, oms_event_id))
    return None


def fail_message(
    sessions: sessionmaker[Session], inbox_id: int, error: str, *, operation_for_queue: Callable[[str], str | None],
) -> list[Recorded]:
    """Set a message aside that could not be processed (an error outside the expected ones, or a
    worker that died on it again and again): `failed`, with a `system/processing-failed` event to
    alert on, for an operator to fix and replay. A message already processed or failed is left alone."""
    with sessions.begin() as session:
        message = session.execute(
            select(InboxMessage).where(InboxMessage.id == inbox_id).with_for_update()
        ).scalar_one_or_none()
        if message is None or message.status != "received":
            return []
        operation = operation_for_queue(message.queue)
        oms_event = record(session, NewEvent(
            type="oms", name=OMS_EVENT_NAMES.get(operation or "", "oms/message-received"), inbox_id=message.id,
            payload=_oms_payload(message), dedupe_key=_oms_key(message.id),
        ))
        message.event_id = oms_event.id
        message.attempts += 1
        message.status, message.last_error, message.processed_at = "failed", error, func.now()
        name = "system/processing-failed"
        failed = record(session, NewEvent(
            type="system", name=name, level="error", parent_id=oms_event.id, inbox_id=message.id,
            payload={"error": error, "queue": message.queue, "inbox_id": message.id,
                     "fix": "nothing of this message was applied; once the cause is fixed, "
                            f"`wheelctl inbox replay {message.id}`"},
            dedupe_key=f"inbox:{message.id}:{name}",
        ))
        return [failed]


def still_received(sessions: sessionmaker[Session], inbox_ids: list[int]) -> list[int]:
    """Those of the messages still waiting to be processed, in the order given (a chunk's order)."""
    with sessions() as session:
        waiting = set(session.execute(
            select(InboxMessage.id).where(InboxMessage.id.in_(inbox_ids), InboxMessage.status == "received")
        ).scalars())
    return [inbox_id for inbox_id in inbox_ids if inbox_id in waiting]


def _superseded_events(channels: dict[str, _Channel], superseded: list[desired_state.Superseded], version: int,
                       inbox_id: int, oms_event_id: int) -> list[NewEvent]:
    """What was superseded: this message's own items (at `version`, its place) that a newer value
    already replaced, and older messages' values waiting to be pushed that it replaced."""
    events = []
    for n, group in enumerate(superseded):
        channel = channels[group.channel_id]
        own = group.inbox_id == version
        events.append(NewEvent(
            type="domain", name=f"{group.operation}/superseded", level="info",
            parent_id=oms_event_id if own else group.parent_event_id, channel_id=channel.id,
            marketplace=channel.marketplace, inbox_id=inbox_id if own else group.inbox_id,
            payload={"items": group.items, "superseded_by": "a newer message" if own else inbox_id,
                     "reason": group.reason or "a newer value replaced it before it was pushed"},
            # One per group of this message's processing, which happens once (record_many needs a key).
            dedupe_key=f"inbox:{inbox_id}:superseded:{n}",
        ))
    return events


def _oms_payload(message) -> dict:
    """The oms event's payload (message: an InboxMessage, or a row with its columns)."""
    excerpt = message.body[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    return {
        "inbox_id": message.id,
        "queue": message.queue,
        "transport_message_id": message.transport_message_id,
        "bytes": message.size,
        "body": excerpt,
        "truncated": message.size > EXCERPT_BYTES,
    }
