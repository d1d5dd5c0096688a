"""Storing a page a pull brought (docs/contracts.md, contract 4): its orders upserted by (channel,
marketplace order id) and its cancelled lines by (channel, order id, line id), so overlaps and
re-runs store nothing twice; each new order's or cancellation's OMS document goes into the outbox
in the same transaction. Unmappable orders are kept and said; a cancellation that arrives before
its order is held, and goes out right after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from wheel.db import models
from wheel.db.locks import LOCK_ORDER_KEYS, order_key
from wheel.domain import Cancellation, CancellationRequest, CancelledLine, Order, Unmappable
from wheel.events import NewEvent, Recorded, record, record_many
from wheel.marketplaces.base import OrderPage
from wheel.oms.orders import cancellation_document, order_document, order_to_json
from wheel.services import outbox
from wheel.services.schedules import DueRun

# A page's orders upserted in one statement whose text never changes (the rows as one JSON array): new
# ones are inserted ready, ones that failed to map before are replaced; the ids of both come back,
# and nothing of an order stored before is touched. Each carries the id its `order/received` event
# will have (drawn first), so the order is not updated again to point at its event.
NEXT_EVENT_IDS = text("SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, :n)")
UPSERT_ORDERS = text(
    """
    INSERT INTO orders (channel_id, order_id, status, document, raw, lines, total, event_id)
    SELECT :channel, r->>'order_id', 'ready', r->'document', r->'raw', CAST(r->>'lines' AS integer),
           CAST(r->>'total' AS numeric), CAST(r->>'event_id' AS bigint)
      FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS t(r, n)
     ORDER BY t.n
    ON CONFLICT (channel_id, order_id) DO UPDATE
       SET status = 'ready', document = EXCLUDED.document, raw = EXCLUDED.raw, failure = NULL,
           lines = EXCLUDED.lines, total = EXCLUDED.total, event_id = EXCLUDED.event_id
     WHERE orders.status = 'failed'
    RETURNING id, order_id
    """
)
SET_ORDER_EVENTS = text(
    "UPDATE orders o SET event_id = t.event_id FROM unnest(CAST(:ids AS bigint[]), CAST(:events AS bigint[])) "
    "AS t(id, event_id) WHERE o.id = t.id"
)
SET_ORDER_EVENT = text("UPDATE orders SET event_id = :e WHERE id = :id")
SET_ORDER_FAILURE = text("UPDATE orders SET failure = :f WHERE id = :id")
STORED_DOCUMENTS = text(
    "SELECT order_id, document FROM orders WHERE channel_id = :c AND order_id = ANY(:ids) AND document IS NOT NULL"
)
SET_CANCELLED_QUANTITY = text("UPDATE cancellations SET quantity = :q WHERE id = ANY(:ids) AND line_id = :l")
# Lines with nothing to send to the OMS: the ledger marks them done.
MARK_CANCELLATIONS_DONE = text("UPDATE cancellations SET status = 'sent' WHERE id = ANY(:ids)")
MARK_CANCELLATIONS_OUTBOXED = text("UPDATE cancellations SET status = 'ready', outbox_id = :o WHERE id = ANY(:ids)")

@dataclass(frozen=True)
class OmsQueues:
    orders: str
    cancellations: str


@dataclass
class PullResult:
    status: str  # succeeded | failed | waiting | busy | skipped
    run: DueRun | None = None
    retry_in_s: float | None = None
    orders: int = 0
    cancellations: int = 0
    failures: int = 0
    calls: int = 0
    # Outbox rows written: the publisher has work.
    outboxed: int = 0
    alerts: list[Recorded] = field(default_factory=list)
    # The run's system.cron/started event: the parent of the orders it stores.
    parent_id: int | None = None

    def summary(self) -> str:
        return (f"{self.status}: {self.orders} orders, {self.cancellations} cancellations, "
                f"{self.failures} unmappable, {self.calls} calls")


def oms_header(channel: models.Channel) -> dict[str, str]:
    """Extra attributes for every document's <Order> (channel option `oms_header`: an object, or
    its JSON text as `channels set --option` stores it)."""
    header = channel.options.get("oms_header") if isinstance(channel.options, dict) else None
    if isinstance(header, str):
        try:
            header = json.loads(header)
        except ValueError:
            header = None
        if not isinstance(header, dict):
            raise ValueError(f"channel {channel.id}'s option oms_header must be a JSON object, e.g. "
                             '{"EntryType": "UA"}; fix it with `wheelctl channels set`')
    return {str(k): str(v) for k, v in (header or {}).items()}


def store_page(session: Session, run: DueRun, channel: models.Channel, page: OrderPage, queues: OmsQueues,
                outcome: PullResult) -> None:
    header = oms_header(channel)
    # An order and a cancellation of it stored at once (the orders and cancellations pulls run side
    # by side) must see each other: lock each order id for the transaction, in one order (no deadlock).
    keys = sorted({order_key(channel.id, oid) for oid in
                   {o.order_id for o in page.orders} | {c.order_id for c in page.cancellations}
                   | {f.order_id for f in page.failures} | {r.order_id for r in page.requests}})
    if keys:
        session.execute(LOCK_ORDER_KEYS, {"keys": keys})
    _store_orders(session, run, channel, page, header, queues, outcome)
    for failure in page.failures:
        _store_failure(session, run, channel, failure, outcome)
    for cancellation in page.cancellations:
        _store_cancellation(session, run, channel, cancellation, header, queues, outcome)
    for request in page.requests:
        _store_request(session, run, channel, request, outcome)


def _event(run: DueRun, name: str, *, level: str = "info", parent_id: int | None = None, key: str | None = None,
           payload: dict[str, Any]) -> NewEvent:
    return NewEvent(type="domain", name=name, level=level, parent_id=parent_id, channel_id=run.channel_id,
                    marketplace=run.marketplace, payload={"job": run.job, "run": run.run_id, **payload}, dedupe_key=key)


def _store_orders(session: Session, run: DueRun, channel: models.Channel, page: OrderPage, header: dict[str, str],
                  queues: OmsQueues, outcome: PullResult) -> None:
    """A page's orders in a few statements: upsert them all, and for the new ones (or ones that
    failed to map before) their `order/received` events and outbox rows."""
    documents: dict[str, tuple[Order, bytes]] = {}
    for order in page.orders:
        try:
            check_total(order)
            documents[order.order_id] = (order, order_document(order, header))
        except ValueError as exc:
            raw = page.raw.get(order.order_id)
            _store_failure(session, run, channel, Unmappable(channel.id, order.order_id, "order", str(exc), raw), outcome)
    if not documents:
        return
    event_ids = dict(zip(documents, session.execute(NEXT_EVENT_IDS, {"n": len(documents)}).scalars(), strict=True))
    rows = session.execute(UPSERT_ORDERS, {"channel": channel.id, "rows": json.dumps([{
        "order_id": order.order_id, "document": order_to_json(order), "raw": page.raw.get(order.order_id),
        "lines": len(order.lines), "total": str(_total(order)), "event_id": event_ids[order.order_id],
    } for order, _ in documents.values()])})
    stored = {order_id: row_id for row_id, order_id in rows}
    new = [documents[order_id] for order_id in documents if order_id in stored]  # page order
    _note_grown(session, run, channel, [documents[oid][0] for oid in documents if oid not in stored], outcome)
    if not new:
        return  # all stored before: an overlap or a re-run
    received = record_many(session, [replace(_event(run, "order/received", parent_id=outcome.parent_id, key=f"order:{channel.id}:{order.order_id}:received", payload={
        "order_id": order.order_id, "lines": len(order.lines), "total": str(_total(order)),
        "skus": [line.sku for line in order.lines][:20],
    }), id=event_ids[order.order_id]) for order, _ in new])
    # An event recorded before (its key was there: an order the retention purge removed, pulled
    # again) keeps its id; the order points at it.
    known = [(stored[order.order_id], r.id) for (order, _), r in zip(new, received, strict=True) if not r.created]
    if known:
        session.execute(SET_ORDER_EVENTS, {"ids": [i for i, _ in known], "events": [e for _, e in known]})
    outbox.add_messages(session, [{"kind": "order", "channel_id": channel.id, "order_id": order.order_id, "queue": queues.orders,
                       "body": body, "event_id": event.id} for (order, body), event in zip(new, received)])
    outcome.orders += len(new)
    outcome.outboxed += len(new)
    # Cancellations that arrived before their order go out now, after it (expired ones too: the
    # OMS must never ship an order the marketplace cancelled).
    held = session.execute(
        select(models.CancelledLine).where(models.CancelledLine.channel_id == channel.id,
                                       models.CancelledLine.status.in_(("held", "expired")),
                                       models.CancelledLine.order_id.in_([order.order_id for order, _ in new]))
        .order_by(models.CancelledLine.id)
    ).scalars().all()
    events = {order.order_id: event.id for (order, _), event in zip(new, received)}
    for order_id in dict.fromkeys(row.order_id for row in held):
        rows = [row for row in held if row.order_id == order_id]
        order = documents[order_id][0]
        never_sent = _not_in(rows, order.lines)
        if never_sent:
            _note_not_sent(session, run, channel, order_id, never_sent, outcome)
            session.execute(delete(models.CancelledLine).where(models.CancelledLine.id.in_([r.id for r in never_sent])))
            rows = [row for row in rows if row not in never_sent]
            if not rows:
                continue
        released = Cancellation(channel.id, order_id,
                                tuple(CancelledLine(r.line_id, r.sku, r.quantity) for r in rows if r.line_id != "*"),
                                rows[0].reason_code, rows[0].reason_text, any(r.whole_order for r in rows))
        outbox_cancellation(session, run, channel, released, [r.id for r in rows], events[order_id], header, queues,
                             outcome, order_lines=order.lines)


def _note_grown(session: Session, run: DueRun, channel: models.Channel, seen: list[Order], outcome: PullResult) -> None:
    """Orders stored before that come back with lines the stored order lacks (Flipkart splits an
    order into shipments, and two shipments can come on different pages or pulls). The OMS has the
    order already; a second document for it would clash. Say so, loudly, with the lines: nothing
    is dropped in silence."""
    if not seen:
        return
    rows = session.execute(
        STORED_DOCUMENTS,
        {"c": channel.id, "ids": [order.order_id for order in seen]},
    )
    stored = {row.order_id: row.document for row in rows}
    for order in seen:
        known = {str(line["line_id"]) for line in (stored.get(order.order_id) or {}).get("lines", [])}
        extra = [line for line in order.lines if line.line_id not in known]
        if not known or not extra:
            continue
        recorded = record(session, _event(
            run, "order/lines-added", level="error", parent_id=outcome.parent_id,
            key=f"order:{channel.id}:{order.order_id}:lines:{_digest(','.join(sorted(l.line_id for l in extra)))}",
            payload={"order_id": order.order_id, "lines": [l.line_id for l in extra], "skus": [l.sku for l in extra],
                     "error": f"order {order.order_id} came back with {len(extra)} line(s) the OMS was not sent "
                              f"({', '.join(l.sku for l in extra)})",
                     "fix": "add the lines to the order in the OMS; Wheel sends an order once"},
        ))
        if recorded.created:
            outcome.alerts.append(recorded)


def _total(order: Order) -> Decimal:
    return sum((p.amount for p in order.payments), Decimal("0"))


# orders.total is NUMERIC(14,2); the marketplaces put no bound on an amount.
MAX_TOTAL = Decimal("999999999999.99")


def check_total(order: Order) -> None:
    """An order whose total Wheel cannot store is unmappable (kept, said), not a page that fails for ever."""
    total = _total(order)
    if abs(total) >= MAX_TOTAL + Decimal("0.005"):  # what Postgres would round up past the column
        raise ValueError(f"the order's total {total} is above {MAX_TOTAL}, the most Wheel stores")


def _store_failure(session: Session, run: DueRun, channel: models.Channel, failure: Unmappable, outcome: PullResult) -> None:
    if failure.kind == "cancellation":
        recorded = record(session, _event(run, "cancellation/failed", level="error", parent_id=outcome.parent_id,
                                          key=f"cancel-failed:{channel.id}:{failure.order_id}:{_digest(failure.reason)}",
                                          payload={"order_id": failure.order_id, "error": failure.reason, "raw": failure.raw}))
    else:
        row_id = session.execute(
            insert(models.Order).values(channel_id=channel.id, order_id=failure.order_id, status="failed",
                                    raw=failure.raw, failure=failure.reason)
            .on_conflict_do_nothing(index_elements=["channel_id", "order_id"]).returning(models.Order.id)
        ).scalar_one_or_none()
        if row_id is None:
            _store_failure_of_known(session, run, channel, failure, outcome)
            return
        recorded = record(session, _event(run, "order/failed", level="error", parent_id=outcome.parent_id,
                                          key=f"order:{channel.id}:{failure.order_id}:failed",
                                          payload={"order_id": failure.order_id, "error": failure.reason,
                                                   "fix": "the order is kept (wheelctl orders list --status failed); "
                                                          "a later pull that maps it sends it"}))
        session.execute(SET_ORDER_EVENT, {"e": recorded.id, "id": row_id})
    outcome.failures += 1
    if recorded.created:
        outcome.alerts.append(recorded)


def _store_failure_of_known(session: Session, run: DueRun, channel: models.Channel, failure: Unmappable,
                            outcome: PullResult) -> None:
    """An order stored before comes back unmappable. One that failed before is reported already. One
    the OMS has (or is about to get) keeps its status, but what Amazon now says of it cannot be
    read: whatever changed (a cancellation Wheel could not see, a new address) may not reach the
    OMS. Said once per reason, with an alert, and kept on the order (`wheelctl orders list`)."""
    row = session.execute(
        select(models.Order.id, models.Order.status, models.Order.event_id)
        .where(models.Order.channel_id == channel.id, models.Order.order_id == failure.order_id).with_for_update()
    ).first()
    if row is None or row.status == "failed":
        return
    session.execute(SET_ORDER_FAILURE, {"f": failure.reason, "id": row.id})
    recorded = record(session, _event(
        run, "order/failed-after-sent", level="error", parent_id=row.event_id,
        key=f"order:{channel.id}:{failure.order_id}:failed-after-sent:{_digest(failure.reason)}",
        payload={"order_id": failure.order_id, "status": row.status, "error": failure.reason, "raw": failure.raw,
                 "fix": f"Wheel sent order {failure.order_id} to the OMS (or is sending it: {row.status}); compare "
                        f"it with the marketplace by hand, as a change to it may not have reached the OMS"}))
    outcome.failures += 1
    if recorded.created:
        outcome.alerts.append(recorded)


def _store_request(session: Session, run: DueRun, channel: models.Channel, request: CancellationRequest,
                   outcome: PullResult) -> None:
    """A buyer asking to cancel lines: not a cancellation (the OMS is not told), but the seller must
    answer before shipping. Said once per set of lines asked for, with an alert."""
    line_ids = [line.line_id for line in request.lines]
    parent = session.execute(
        select(models.Order.event_id).where(models.Order.channel_id == channel.id, models.Order.order_id == request.order_id)
    ).scalar_one_or_none()
    recorded = record(session, replace(_event(
        run, "cancellation/requested", level="warning", parent_id=parent or outcome.parent_id,
        key=f"cancel-request:{channel.id}:{request.order_id}:{_digest(','.join(sorted(line_ids)))}",
        payload={"order_id": request.order_id, "lines": line_ids, "skus": [line.sku for line in request.lines],
                 "requester": request.requester, "reason": request.reason,
                 "action": f"the {request.requester.lower()} asked to cancel {', '.join(l.sku for l in request.lines)} "
                           f"of order {request.order_id} ({request.reason or 'no reason given'}): cancel it in "
                           f"Seller Central before it ships, or ship it; a cancellation then reaches the OMS"}),
        alert=True))  # a warning with an alert: the seller must answer it
    if recorded.created:
        outcome.alerts.append(recorded)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _store_cancellation(session: Session, run: DueRun, channel: models.Channel, cancellation: Cancellation,
                        header: dict[str, str], queues: OmsQueues, outcome: PullResult) -> None:
    order_row = session.execute(
        select(models.Order.status, models.Order.document, models.Order.event_id)
        .where(models.Order.channel_id == channel.id, models.Order.order_id == cancellation.order_id).with_for_update()
    ).first()
    known = order_row is not None and order_row.status in ("ready", "sent")
    lines = cancellation.lines or (CancelledLine("*", "*", 0),)
    never_sent = _not_in(lines, _lines_of(order_row.document)) if known else []
    if never_sent:
        _note_not_sent(session, run, channel, cancellation.order_id, never_sent, outcome)
        lines = tuple(line for line in lines if line not in never_sent)
        if not lines:
            return
    new_ids: list[int] = []
    new_lines: list[CancelledLine] = []
    for line in lines:
        row_id = session.execute(
            insert(models.CancelledLine).values(
                channel_id=channel.id, order_id=cancellation.order_id, line_id=line.line_id, sku=line.sku,
                quantity=line.quantity, reason_code=cancellation.reason_code, reason_text=cancellation.reason_text,
                whole_order=cancellation.whole_order, status="ready" if known else "held",
            ).on_conflict_do_nothing(index_elements=["channel_id", "order_id", "line_id"]).returning(models.CancelledLine.id)
        ).scalar_one_or_none()
        if row_id is not None:
            new_ids.append(row_id)
            new_lines.append(line)
    if not new_ids:
        return  # every line was cancelled before: an overlap or a re-run
    fresh = Cancellation(channel.id, cancellation.order_id, tuple(l for l in new_lines if l.line_id != "*"),
                         cancellation.reason_code, cancellation.reason_text, cancellation.whole_order)
    if not known:
        record(session, _event(run, "cancellation/held", level="warning", parent_id=outcome.parent_id,
                                          key=f"cancel:{channel.id}:{cancellation.order_id}:{_digest(','.join(l.line_id for l in new_lines))}:held",
                                          payload={"order_id": cancellation.order_id, "lines": [l.line_id for l in new_lines],
                                                   "reason": "its order has not been received (or could not be mapped); "
                                                             "the cancellation goes to the OMS right after the order"}))
        outcome.cancellations += 1
        return
    order_lines = tuple(_lines_of(order_row.document))
    outbox_cancellation(session, run, channel, fresh, new_ids, order_row.event_id, header, queues, outcome,
                         order_lines=order_lines)


def _sendable(session: Session, run: DueRun, channel: models.Channel, cancellation: Cancellation, row_ids: list[int],
              order_lines, outcome: PullResult) -> Cancellation | None:
    """The cancellation as the OMS can take it, against the lines the OMS was sent. A line reported
    with quantity 0 (Amazon gives cancelled items so) is cancelled with the quantity it was sent
    with; a line at 0 the OMS never had (it was cancelled before the order was first pulled) is not
    sent, and said so once. None when nothing is left to send."""
    sent = {line.line_id: line for line in order_lines}
    keep, never = [], []
    for line in cancellation.lines:
        if line.quantity >= 1:
            keep.append(line)
        elif line.line_id in sent:
            keep.append(CancelledLine(line.line_id, line.sku, sent[line.line_id].quantity))
            session.execute(SET_CANCELLED_QUANTITY,
                            {"q": sent[line.line_id].quantity, "ids": row_ids, "l": line.line_id})
        else:
            never.append(line)
    if not never:
        return Cancellation(cancellation.channel_id, cancellation.order_id, tuple(keep), cancellation.reason_code,
                            cancellation.reason_text, cancellation.whole_order)
    record(session, _event(
        run, "cancellation/not-sent", parent_id=outcome.parent_id,
        key=f"cancel:{channel.id}:{cancellation.order_id}:{_digest(','.join(sorted(l.line_id for l in never)))}:not-sent",
        payload={"order_id": cancellation.order_id, "lines": [l.line_id for l in never], "skus": [l.sku for l in never],
                 "reason": "the marketplace cancelled these lines before the order reached the OMS, which was "
                           "sent the order without them: there is nothing to cancel"}))
    if not keep and not cancellation.whole_order:
        # Nothing for the OMS: the ledger marks the lines done.
        session.execute(MARK_CANCELLATIONS_DONE, {"ids": row_ids})
        return None
    return Cancellation(cancellation.channel_id, cancellation.order_id, tuple(keep), cancellation.reason_code,
                        cancellation.reason_text, cancellation.whole_order)


def _not_in(lines: Sequence[Any], order_lines: Sequence[Any]) -> list[Any]:
    """The cancelled lines (or ledger rows) that are no line of the order the OMS was sent: a
    marketplace adapter leaves an item cancelled before the import out of the order (Flipkart)."""
    sent = {str(line.line_id) for line in order_lines}
    return [line for line in lines if sent and line.line_id != "*" and str(line.line_id) not in sent]


def _note_not_sent(session: Session, run: DueRun, channel: models.Channel, order_id: str, lines: Sequence[Any],
                   outcome: PullResult) -> None:
    lines = sorted(lines, key=lambda line: str(line.line_id))
    ids = [str(line.line_id) for line in lines]
    record(session, _event(run, "cancellation/not-sent", level="warning", parent_id=outcome.parent_id,
                           key=f"cancel:{channel.id}:{order_id}:{_digest(','.join(ids))}:not-sent",
                           payload={"order_id": order_id, "lines": ids, "skus": [line.sku for line in lines],
                                    "reason": "the OMS was never sent these lines (cancelled before the order "
                                              "was imported): nothing to cancel there",
                                    "fix": "only if they were added to the OMS order by hand (order/lines-added), "
                                           "cancel them there"}))


def _lines_of(document: dict[str, Any] | None) -> list[CancelledLine]:
    return [CancelledLine(str(l["line_id"]), str(l["sku"]), int(l["quantity"])) for l in (document or {}).get("lines", [])]


def outbox_cancellation(session: Session, run: DueRun, channel: models.Channel, cancellation: Cancellation, row_ids: list[int],
                         parent_id: int | None, header: dict[str, str], queues: OmsQueues, outcome: PullResult,
                         *, order_lines) -> None:
    all_line_ids = {line.line_id for line in order_lines}
    cancellation = _sendable(session, run, channel, cancellation, row_ids, order_lines, outcome)
    if cancellation is None:
        return
    earlier = session.execute(
        select(models.CancelledLine.line_id).where(
            models.CancelledLine.channel_id == channel.id, models.CancelledLine.order_id == cancellation.order_id,
            models.CancelledLine.id.not_in(row_ids))
    ).scalars().all()
    these = {line.line_id for line in cancellation.lines}
    # Whole: no lines named, the marketplace says so, or every line of the order with none sent before.
    whole = (not cancellation.lines or cancellation.whole_order
             or (not earlier and bool(all_line_ids) and these >= all_line_ids))
    body = cancellation_document(cancellation, whole_order=whole, header=header)
    recorded = record(session, _event(run, "cancellation/received", parent_id=parent_id,
                                      key=f"cancel:{channel.id}:{cancellation.order_id}:{_digest(','.join(sorted(these)) or '*')}",
                                      payload={"order_id": cancellation.order_id, "whole_order": whole,
                                               "lines": sorted(these), "reason": cancellation.reason_text}))
    [outbox_id] = outbox.add_messages(session, [{"kind": "cancellation", "channel_id": channel.id, "order_id": cancellation.order_id,
                                     "queue": queues.cancellations, "body": body, "event_id": recorded.id}])
    session.execute(MARK_CANCELLATIONS_OUTBOXED,
                    {"o": outbox_id, "ids": row_ids})
    outcome.cancellations += 1
    outcome.outboxed += 1
