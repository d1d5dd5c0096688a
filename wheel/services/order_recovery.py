"""Recovering the order pulls by hand, for `wheelctl jobs rewind` and `wheelctl orders retry|release|expire`.

Each goes through the same storing path as a pull (`store_page` in wheel/services/pull_store.py), so
what it sends to the OMS is upserted, evented and outboxed exactly as a pulled order is
(docs/contracts.md, contract 4):

- A rewind moves a schedule's watermark back, so that the next run pulls the window again. It is
  safe because storing is idempotent: orders are upserted by (channel, order id) and only new ones
  (or ones that failed to map before) reach the outbox; cancelled lines are inserted once per
  (channel, order id, line id); events carry dedupe keys.
- A retry maps a failed order again from the raw record kept with it, with today's mappers and
  channel settings, and stores it as a pull would: if it maps now it goes to the outbox, and
  cancellations held for it follow it.
- A held cancellation (its order never came) can be expired (Wheel stops waiting; it still follows
  its order if the order comes, as the sweeper's expiry does), or released: sent to the OMS now,
  for an order the OMS has from elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from wheel.db import locks, models
from wheel.db.models import Channel, Event
from wheel.domain import Cancellation, CancelledLine, Unmappable
from wheel.events import NewEvent, record
from wheel.marketplaces.amazon import orders as amazon_orders
from wheel.marketplaces.base import OrderPage, PullCapabilities
from wheel.marketplaces.flipkart import orders as flipkart_orders
from wheel.marketplaces.tatacliq import orders as tatacliq_orders
from wheel.oms.orders import order_document
from wheel.oms.xml import parse

# The pull's own storing path and its lock, reused so that a hand-made change follows the very
# same steps (and locks) as a pull; see the module's docstring.
from wheel.services.pull_store import OmsQueues, PullResult, check_total, oms_header, outbox_cancellation, store_page
from wheel.services.schedules import DueRun, ScheduleError, get, utcnow

# A stored raw order is at most one marketplace record; this bounds the XML one (Tata CLiQ).
MAX_RAW_BYTES = 10 * 1024 * 1024


class RecoveryError(LookupError):
    """The order, cancellation or schedule is not in a state this can act on; the message says why."""


# -- rewinding a pull ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rewound:
    previous: datetime | None
    to: datetime
    resumed_cursor: bool  # a pull in progress was to resume from a page; it now starts afresh
    rereads_from: datetime  # the next run's window starts here (the watermark less the overlap)


def rewind(sessions: sessionmaker[Session], channel_id: str, job: str, to: datetime, *,
           capabilities: PullCapabilities | None, now: Callable[[], datetime] = utcnow) -> Rewound:
    """Set a schedule's watermark back to `to`, so the next run pulls from there again. Refused for
    a time in the future or not before the watermark (that would skip orders), for a marketplace
    that pulls no window, and while a pull of the schedule runs (it would move the watermark on)."""
    if to > now():
        raise ScheduleError(f"{to.isoformat()} is in the future; a rewind goes back in time")
    if capabilities is not None and not capabilities.uses_window:
        raise ScheduleError(f"{channel_id}'s marketplace answers every open order on every pull: there is no "
                            "window to rewind (the next run reads them all anyway)")
    with sessions() as session:
        schedule_id = get(session, channel_id, job).id
    engine: Engine = sessions.kw["bind"]
    with engine.connect() as lock_conn:
        got = lock_conn.execute(locks.TRY_LOCK, {"k": locks.schedule_lock(schedule_id)}).scalar_one()
        lock_conn.commit()
        if not got:
            raise ScheduleError(f"a pull of {channel_id} {job} is running; rewind when it has finished "
                                "(see `wheelctl jobs list`)")
        try:
            with sessions.begin() as session:
                schedule = get(session, channel_id, job, lock=True)
                previous = schedule.watermark
                if previous is not None and to >= previous:
                    raise ScheduleError(f"{to.isoformat()} is not before the watermark ({previous.isoformat()}): "
                                        "a rewind only goes back, as moving it on would skip orders")
                resumed = schedule.cursor is not None
                schedule.watermark, schedule.cursor, schedule.updated_at = to, None, now()
                channel = session.get(Channel, channel_id)
                record(session, NewEvent(
                    type="system", name="system.cron/rewound", level="warning", channel_id=channel_id,
                    marketplace=channel.marketplace,
                    payload={"job": job, "from": previous and previous.isoformat(), "to": to.isoformat(),
                             "dropped_cursor": resumed, "by": "wheelctl"}))
        finally:
            lock_conn.execute(locks.UNLOCK, {"k": locks.schedule_lock(schedule_id)})
            lock_conn.commit()
    overlap = capabilities.overlap_s if capabilities is not None else 0.0
    return Rewound(previous, to, resumed, to - timedelta(seconds=overlap))


# -- retrying a failed order --------------------------------------------------------------------


@dataclass(frozen=True)
class Retried:
    order_id: str
    sent: bool  # mapped now, and in the outbox
    error: str | None = None  # why it still cannot be mapped
    cancellations: int = 0  # held cancellations released after it


def _amazon(channel: Channel, order_id: str, raw: Any) -> OrderPage:
    mapped = amazon_orders.map_order(channel.id, raw, (channel.options or {}).get("currency") or "INR")
    return OrderPage(orders=[mapped.order] if mapped.order else [],
                     cancellations=[mapped.cancellation] if mapped.cancellation else [],
                     failures=[mapped.failure] if mapped.failure else [],
                     requests=[mapped.request] if mapped.request else [], raw={order_id: raw})


# A number Flipkart wrote with a fraction, as the stored record keeps it (a string: `jsonable`).
_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+(?:[eE][-+]?[0-9]+)?")


def _numbers(value: Any) -> Any:
    """Flipkart's answer as its client parsed it (fractions as Decimals), from the stored record,
    where `flipkart.orders.jsonable` wrote each Decimal as its exact string. A text field that looks
    like a fraction becomes a Decimal too, which the mapper reads back as the same text."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    return value


def _flipkart(channel: Channel, order_id: str, raw: Any) -> OrderPage:
    shipments = _numbers(raw if isinstance(raw, list) else [raw])
    try:
        order = flipkart_orders.to_order(channel.id, order_id, shipments)
    except flipkart_orders.Refused as why:
        return OrderPage(failures=[Unmappable(channel.id, order_id, "order", str(why), raw)], raw={order_id: raw})
    if order is None:
        why = "no item of it is due: every shipment is on hold or every item cancelled"
        return OrderPage(failures=[Unmappable(channel.id, order_id, "order", why, raw)], raw={order_id: raw})
    return OrderPage(orders=[order], raw={order_id: raw})


def _tatacliq(channel: Channel, order_id: str, raw: Any) -> OrderPage:
    try:
        if not isinstance(raw, str):
            raise ValueError("the stored record is not the order's XML")
        order = tatacliq_orders.map_order(channel.id, order_id, parse(raw.encode(), max_bytes=MAX_RAW_BYTES))
    except ValueError as why:  # the mapper's _Unmappable, and OmsMessageError, are ValueErrors
        return OrderPage(failures=[Unmappable(channel.id, order_id, "order", str(why), raw)], raw={order_id: raw})
    return OrderPage(orders=[order], raw={order_id: raw})


# Each marketplace's mapping of the one record a failed order keeps (`Unmappable.raw`).
REMAP: dict[str, Callable[[Channel, str, Any], OrderPage]] = {
    "amazon": _amazon, "flipkart": _flipkart, "tatacliq": _tatacliq,
}


def retry_order(sessions: sessionmaker[Session], channel_id: str, order_id: str, queues: OmsQueues) -> Retried:
    """Map a failed order again from its stored record; if it maps now, store it as a pull would
    (outbox, `order/received`, its held cancellations after it). Either way an `order/retried` event."""
    with sessions.begin() as session:
        channel = session.get(Channel, channel_id)
        if channel is None:
            raise RecoveryError(f"no channel {channel_id}")
        row = session.execute(select(models.Order).where(models.Order.channel_id == channel_id, models.Order.order_id == order_id)
                              .with_for_update()).scalar_one_or_none()
        if row is None:
            raise RecoveryError(f"no order {order_id} on {channel_id} (see `wheelctl orders list --channel {channel_id}`)")
        if row.status != "failed":
            raise RecoveryError(f"order {order_id} on {channel_id} is {row.status}, not failed: it maps already")
        if row.raw is None:
            raise RecoveryError(f"order {order_id} on {channel_id} kept no record of what the marketplace sent; "
                                f"rewind the pull to read it again (`wheelctl jobs rewind {channel_id} orders --to ...`)")
        page = REMAP[channel.marketplace](channel, order_id, row.raw)
        problem = next((f.reason for f in page.failures if f.order_id == order_id), None)
        order = next((o for o in page.orders if o.order_id == order_id), None)
        if order is not None and problem is None:
            try:
                check_total(order)
                order_document(order, oms_header(channel))
            except ValueError as exc:
                problem = str(exc)
        if order is None and problem is None:
            problem = "the marketplace's record holds no order to send (it may be cancelled whole)"
        run = DueRun(None, None, channel_id, channel.marketplace, "orders", utcnow(), "manual")
        outcome = PullResult("succeeded", run, parent_id=row.event_id)
        if problem is None:
            store_page(session, run, channel, page, queues, outcome)
        else:
            session.execute(update(models.Order).where(models.Order.id == row.id).values(failure=problem))
        record(session, NewEvent(
            type="domain", name="order/retried", level="info" if problem is None else "warning",
            parent_id=row.event_id, channel_id=channel_id, marketplace=channel.marketplace,
            payload={"order_id": order_id, "by": "wheelctl", "sent": problem is None,
                     **({"error": problem} if problem else {})}))
    return Retried(order_id, problem is None, problem, outcome.cancellations)


# -- held cancellations -------------------------------------------------------------------------


def _held(session: Session, channel_id: str, order_id: str, statuses: tuple[str, ...]) -> list[models.CancelledLine]:
    # The order's own lock, as a pull takes it (`store_page`): a pull storing the order meanwhile waits.
    session.execute(locks.LOCK_ORDER_KEYS, {"keys": [locks.order_key(channel_id, order_id)]})
    return list(session.execute(
        select(models.CancelledLine).where(models.CancelledLine.channel_id == channel_id, models.CancelledLine.order_id == order_id,
                                       models.CancelledLine.status.in_(statuses))
        .order_by(models.CancelledLine.id).with_for_update()
    ).scalars())


def _held_event(session: Session, channel_id: str, order_id: str) -> int | None:
    return session.execute(
        select(Event.id).where(Event.name == "cancellation/held", Event.channel_id == channel_id,
                               Event.payload["order_id"].astext == order_id).order_by(Event.id).limit(1)
    ).scalar_one_or_none()


def expire_cancellation(sessions: sessionmaker[Session], channel_id: str, order_id: str) -> int:
    """Stop waiting for the order of a held cancellation (as the sweeper does after
    WHEEL_HELD_CANCELLATION_MAX_AGE_S): it still follows its order if the order comes. The lines expired."""
    with sessions.begin() as session:
        rows = _held(session, channel_id, order_id, ("held",))
        if not rows:
            raise RecoveryError(_none_held(session, channel_id, order_id))
        for row in rows:
            row.status = "expired"
        channel = session.get(Channel, channel_id)
        record(session, NewEvent(
            type="domain", name="cancellation/expired", level="info", parent_id=_held_event(session, channel_id, order_id),
            channel_id=channel_id, marketplace=channel.marketplace,
            dedupe_key=f"cancel:{channel_id}:{order_id}:expired:{rows[0].id}",  # the sweeper's key: one expiry per hold
            payload={"order_id": order_id, "lines": [r.line_id for r in rows if r.line_id != "*"],
                     "skus": [r.sku for r in rows if r.sku != "*"], "by": "wheelctl",
                     "held_since": rows[0].received_at.isoformat(timespec="seconds"),
                     "reason": "expired by hand: Wheel no longer waits for the order; if it does come, the "
                               "cancellation still goes to the OMS right after it"}))
        return len(rows)


def release_cancellation(sessions: sessionmaker[Session], channel_id: str, order_id: str, queues: OmsQueues) -> int:
    """Send a held (or expired) cancellation to the OMS now, without its order: for an order the
    OMS has from elsewhere. Refused when Wheel holds the order as failed (retry it instead: the
    cancellation then follows it). The outbox rows written."""
    with sessions.begin() as session:
        channel = session.get(Channel, channel_id)
        if channel is None:
            raise RecoveryError(f"no channel {channel_id}")
        rows = _held(session, channel_id, order_id, ("held", "expired"))
        if not rows:
            raise RecoveryError(_none_held(session, channel_id, order_id))
        order = session.execute(select(models.Order.status).where(models.Order.channel_id == channel_id,
                                                              models.Order.order_id == order_id)).scalar_one_or_none()
        if order is not None:
            raise RecoveryError(f"Wheel holds order {order_id} as {order}; `wheelctl orders retry {channel_id} "
                                f"{order_id}` sends it, and this cancellation right after it")
        run = DueRun(None, None, channel_id, channel.marketplace, "cancellations", utcnow(), "manual")
        parent = _held_event(session, channel_id, order_id)
        outcome = PullResult("succeeded", run, parent_id=parent)
        released = Cancellation(channel_id, order_id,
                                tuple(CancelledLine(r.line_id, r.sku, r.quantity) for r in rows if r.line_id != "*"),
                                rows[0].reason_code, rows[0].reason_text, any(r.whole_order for r in rows))
        outbox_cancellation(session, run, channel, released, [r.id for r in rows], parent, oms_header(channel), queues,
                             outcome, order_lines=())
        record(session, NewEvent(
            type="domain", name="cancellation/released", level="warning", parent_id=parent, channel_id=channel_id,
            marketplace=channel.marketplace,
            payload={"order_id": order_id, "lines": [r.line_id for r in rows if r.line_id != "*"], "by": "wheelctl",
                     "outboxed": outcome.outboxed,
                     "reason": "released by hand without its order, which the OMS has from elsewhere"}))
        return outcome.outboxed


def _none_held(session: Session, channel_id: str, order_id: str) -> str:
    statuses = session.execute(
        select(models.CancelledLine.status).where(models.CancelledLine.channel_id == channel_id,
                                              models.CancelledLine.order_id == order_id).distinct()
    ).scalars().all()
    if not statuses:
        return f"no cancellation of order {order_id} on {channel_id}"
    return f"the cancellation of order {order_id} on {channel_id} is {', '.join(sorted(statuses))}: none is held"
