"""Turning one stored OMS message into events and per-channel pushes.

The message is logged first as an `oms` event, the parent of everything it causes. A bad message
gets a `system/parsing-failed` event and stays in the inbox for an operator to fix and replay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Channel, InboxMessage, Push
from wheel.domain import group_by_channel
from wheel.events import NewEvent, Recorded, record
from wheel.oms.ranging import decode_ranging
from wheel.oms.xml import OmsMessageError

# The `oms` event that logs a message, by the operation its queue carries.
OMS_EVENT_NAMES = {
    "ranging": "oms/items-ranged",
    "deranging": "oms/items-deranged",
    "inventory": "oms/inventory-updated",
    "pricing": "oms/prices-updated",
}
DECODERS = {"ranging": decode_ranging}
# Enough of the raw message in the event for the dashboard; the inbox keeps all of it.
EXCERPT_BYTES = 4096


@dataclass
class Processed:
    inbox_id: int
    oms_event_id: int | None = None
    pushes: list[tuple[int, str]] = field(default_factory=list)  # (push id, marketplace)
    alerts: list[Recorded] = field(default_factory=list)
    skipped: bool = False


def process_message(
    sessions: sessionmaker[Session],
    inbox_id: int,
    *,
    operation_for_queue: Callable[[str], str | None],
    max_message_bytes: int,
) -> Processed:
    """Parse and route one inbox message; idempotent (a processed message is left alone).

    The caller sends the returned pushes' tasks after this returns (after the commit).
    """
    result = Processed(inbox_id)
    with sessions.begin() as session:
        message = session.execute(
            select(InboxMessage).where(InboxMessage.id == inbox_id).with_for_update()
        ).scalar_one_or_none()
        if message is None or message.status != "received":
            result.skipped = True
            return result
        message.attempts += 1
        operation = operation_for_queue(message.queue)
        oms_event = record(
            session,
            NewEvent(
                type="oms",
                name=OMS_EVENT_NAMES.get(operation or "", "oms/message-received"),
                inbox_id=message.id,
                payload=_oms_payload(message),
                dedupe_key=f"inbox:{message.id}:oms",
            ),
        )
        message.event_id = result.oms_event_id = oms_event.id

        def system_error(name: str, payload: dict, channel_id: str | None = None) -> None:
            key = f"inbox:{message.id}:{name}" + (f":{channel_id}" if channel_id else "")
            event = NewEvent(type="system", name=name, level="error", parent_id=oms_event.id,
                             channel_id=channel_id, inbox_id=message.id, payload=payload, dedupe_key=key)
            result.alerts.append(record(session, event))

        def fail(name: str, error: str) -> None:
            system_error(name, {"error": error, "queue": message.queue, "inbox_id": message.id})
            message.status = "failed"
            message.last_error = error
            message.processed_at = func.now()

        decoder = DECODERS.get(operation or "")
        if decoder is None:
            fail(
                "system/processing-failed",
                f"queue {message.queue!r} carries {operation or 'no known operation'}, "
                "which this version of Wheel does not process yet",
            )
            return result
        try:
            items = decoder(message.body, max_bytes=max_message_bytes)
        except OmsMessageError as exc:
            fail("system/parsing-failed", str(exc))
            return result

        by_channel = group_by_channel(items)
        channels = {
            channel.id: channel
            for channel in session.execute(
                select(Channel).where(Channel.id.in_(list(by_channel)))
            ).scalars()
        }
        for channel_id, channel_items in by_channel.items():
            channel = channels.get(channel_id)
            if channel is None or not channel.enabled:
                name = "system/channel-not-found" if channel is None else "system/channel-disabled"
                reason = "is not configured" if channel is None else "is disabled"
                system_error(
                    name,
                    {
                        "error": f"channel {channel_id!r} {reason}; its items were not sent",
                        "items": [item.as_dict() for item in channel_items],
                    },
                    channel_id=channel_id,
                )
                continue
            push_id = session.execute(
                insert(Push)
                .values(
                    inbox_id=message.id,
                    channel_id=channel_id,
                    operation=operation,
                    items=[item.as_dict() for item in channel_items],
                )
                .on_conflict_do_nothing()
                .returning(Push.id)
            ).scalar_one_or_none()
            if push_id is not None:
                result.pushes.append((push_id, channel.marketplace))
        message.status = "processed"
        message.processed_at = func.now()
    return result


def _oms_payload(message: InboxMessage) -> dict:
    excerpt = message.body[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    return {
        "inbox_id": message.id,
        "queue": message.queue,
        "transport_message_id": message.transport_message_id,
        "bytes": message.size,
        "body": excerpt,
        "truncated": message.size > EXCERPT_BYTES,
    }
