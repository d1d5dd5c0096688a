"""Running a scheduled pull: orders or cancellations from one channel into Postgres and the outbox.

A pull covers a window [start, end): from the schedule's watermark less the source's overlap,
to now less the marketplace's settle lag. Each page is stored in its own transaction together
with the cursor that resumes the pull after it, so a crash or a quota wait resumes at the next
page; the watermark moves to the window's end only once every page up to it is stored. Orders are
upserted by (channel, marketplace order id), and cancelled lines by (channel, order id, line id),
so overlaps and re-runs store nothing twice. The OMS document goes into the outbox in the same
transaction as its order (docs/contracts.md, contract 4).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import CancelledLine as CancelledLineRow
from wheel.db.models import Channel, JobRun, OutboxMessage, Schedule
from wheel.db.models import Order as OrderRow
from wheel.domain import Cancellation, CancellationRequest, CancelledLine, Order, Unmappable
from wheel.events import NewEvent, Recorded, record, record_many
from wheel.marketplaces.base import OrderPage, OrderSource, PullWindow, QuotaGate, QuotaWait
from wheel.marketplaces.errors import AuthError, MarketplaceError, TransientError
from wheel.oms.orders import cancellation_document, order_document, order_to_json
from wheel.services.schedules import DueRun, cron_event, record_cron, utcnow

log = logging.getLogger(__name__)

# Retried runs (busy, quota) wait at least this long.
MIN_RETRY_S = 1.0
# Orders stored per transaction.
PART_SIZE = 250
# A page cursor older than this is dropped and its window pulled again from the start.
CURSOR_TTL = timedelta(hours=20)


@dataclass(frozen=True)
class OmsQueues:
    orders: str
    cancellations: str


@dataclass
class PullOutcome:
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


def _lock_key(schedule_id: int) -> int:
    # One advisory lock per schedule: one pull per (channel, job) at a time.
    return (0x77686C00 << 24) | schedule_id


def run_pull(
    sessions: sessionmaker[Session],
    run_id: int,
    *,
    source_for: Callable[[Channel], tuple[OrderSource, QuotaGate]],
    queues: OmsQueues,
    worker: str,
    initial_lookback_s: float,
    on_stored: Callable[[], None] = lambda: None,
    now: Callable[[], datetime] = utcnow,
) -> PullOutcome:
    """Run one scheduled pull. `on_stored` is called after each page that wrote to the outbox is
    committed (the publisher can start on it while the pull goes on)."""
    with sessions.begin() as session:
        found = session.execute(
            select(JobRun, Schedule, Channel)
            .join(Schedule, Schedule.id == JobRun.schedule_id)
            .join(Channel, Channel.id == Schedule.channel_id)
            .where(JobRun.id == run_id)
        ).first()
        if found is None:
            return PullOutcome("skipped")
        run_row, schedule, channel = found
        run = DueRun(run_row.id, schedule.id, channel.id, channel.marketplace, schedule.job, run_row.due_at, run_row.trigger)
        if run_row.status in ("succeeded", "failed"):
            return PullOutcome("skipped", run)
        session.expunge_all()

    engine: Engine = sessions.kw["bind"]
    with engine.connect() as lock_conn:
        # Held on its own connection for the whole pull; a killed worker's connection drops and frees it.
        got = lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _lock_key(schedule.id)}).scalar_one()
        lock_conn.commit()
        if not got:
            # Another task holds this schedule's pull. A run already started is that task's own
            # (this is a duplicate delivery): leave it. A run not started yet waits its turn.
            return PullOutcome("busy", run, retry_in_s=5.0 if run_row.status == "due" else None)
        try:
            return _pull_locked(sessions, run, channel, source_for, queues, worker, initial_lookback_s, on_stored, now)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(schedule.id)})
            lock_conn.commit()


def _pull_locked(sessions, run: DueRun, channel: Channel, source_for, queues: OmsQueues, worker: str,
                 initial_lookback_s: float, on_stored, now) -> PullOutcome:
    outcome = PullOutcome("succeeded", run)
    with sessions.begin() as session:
        run_row = session.get(JobRun, run.run_id, with_for_update=True)
        if run_row.status in ("succeeded", "failed"):
            return PullOutcome("skipped", run)
        schedule = session.get(Schedule, run.schedule_id, with_for_update=True)
        if run_row.status == "due":
            run_row.status, run_row.started_at, run_row.worker = "running", now(), worker
            schedule.last_started_at = run_row.started_at
        started = record_cron(session, run, "started", key=f"run:{run.run_id}:started", payload={"worker": worker})
        outcome.parent_id = started.id  # what the run finds hangs under it: `wheelctl events --parent`
        cursor = schedule.cursor
        watermark = schedule.watermark

    gate: QuotaGate | None = None
    try:
        source, gate = source_for(channel)
        caps = source.pull_capabilities
        if run.job not in caps.jobs:
            raise MarketplaceError(f"{channel.marketplace} has no {run.job} pull (it has: {', '.join(caps.jobs)})")
        if cursor:
            window = PullWindow(datetime.fromisoformat(cursor["start"]), datetime.fromisoformat(cursor["end"]))
            page_cursor = cursor.get("page")
            if now() - datetime.fromisoformat(cursor.get("at", cursor["end"])) > CURSOR_TTL:
                page_cursor = None  # marketplaces' page tokens expire (Amazon: 24 h): redo the window
        else:
            current = now()
            start = watermark - timedelta(seconds=caps.overlap_s) if watermark else current - timedelta(seconds=initial_lookback_s)
            window = PullWindow(start, current - timedelta(seconds=caps.settle_lag_s))
            page_cursor = None
        if window.end > window.start or not caps.uses_window:
            for page in source.pull(run.job, window, page_cursor, gate):
                for part, last in _parts(page):
                    outboxed = outcome.outboxed
                    with sessions.begin() as session:
                        _store_page(session, run, channel, part, queues, outcome)
                        if last:
                            next_cursor = ({"start": window.start.isoformat(), "end": window.end.isoformat(),
                                            "page": page.cursor, "at": now().isoformat()} if page.cursor is not None else None)
                            session.execute(text("UPDATE schedules SET cursor = CAST(:c AS jsonb) WHERE id = :id"),
                                            {"c": _json(next_cursor), "id": run.schedule_id})
                            _count(session, run.run_id, outcome, page)
                            _warn(session, run, page.warnings, outcome, now)
                    if outcome.outboxed > outboxed:
                        on_stored()
        with sessions.begin() as session:
            schedule = session.get(Schedule, run.schedule_id, with_for_update=True)
            if window.end > (schedule.watermark or window.start) or schedule.watermark is None:
                schedule.watermark = window.end
            schedule.cursor = None
            _finish(session, run, schedule, "succeeded", None, now())
        return outcome
    except QuotaWait as wait:
        outcome.status, outcome.retry_in_s = "waiting", max(MIN_RETRY_S, wait.retry_in_s)
        _note_waiting(sessions, run, str(wait))
        return outcome
    except TransientError as exc:
        if exc.status == 429 and gate is not None:
            # Throttled, with or without Retry-After (SP-API sends none): the quota says when to
            # come back. Never a failure: the run resumes from its cursor.
            wait = gate.throttled(exc.retry_after)
            outcome.status, outcome.retry_in_s = "waiting", max(MIN_RETRY_S, wait.retry_in_s)
            _note_waiting(sessions, run, f"{exc}; the {wait.operation} quota is waited out")
            return outcome
        return _fail(sessions, run, exc, outcome, now)
    except (MarketplaceError, ValueError) as exc:
        # ValueError: a channel setting or a document Wheel cannot build; said, not retried blindly.
        return _fail(sessions, run, exc, outcome, now)


def fail_run(sessions: sessionmaker[Session], run_id: int, error: str, now: Callable[[], datetime] = utcnow) -> PullOutcome:
    """Fail a run its task could not finish (an error outside the expected ones, or a worker that
    died on it again and again): said with an error event to alert on, and the next run pulls the
    window again. A run already finished is left alone."""
    with sessions() as session:
        found = session.execute(
            select(JobRun, Schedule, Channel).join(Schedule, Schedule.id == JobRun.schedule_id)
            .join(Channel, Channel.id == Schedule.channel_id).where(JobRun.id == run_id)
        ).first()
    if found is None or found[0].status in ("succeeded", "failed"):
        return PullOutcome("skipped")
    run_row, schedule, channel = found
    run = DueRun(run_row.id, schedule.id, channel.id, channel.marketplace, schedule.job, run_row.due_at, run_row.trigger)
    return _fail(sessions, run, RuntimeError(error), PullOutcome("failed", run), now)


def _parts(page: OrderPage, size: int = PART_SIZE):
    """A page in parts of at most `size` orders, each stored in its own transaction, so the
    publisher starts on the first while the rest are stored (Tata CLiQ answers every open order in
    one page). Cancellations, failures and cancellation requests go with the last part, which also moves the cursor: a
    crash part-way redoes the page, and the upserts make that harmless."""
    orders = page.orders
    for start in range(0, max(len(orders) - size, 0), size):
        yield OrderPage(orders=orders[start:start + size], raw=page.raw), False
    tail = orders[(max(len(orders) - 1, 0) // size) * size:] if orders else []
    yield OrderPage(orders=tail, cancellations=page.cancellations, failures=page.failures, requests=page.requests,
                    raw=page.raw, cursor=page.cursor, calls=page.calls), True


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _count(session: Session, run_id: int, outcome: PullOutcome, page: OrderPage) -> None:
    outcome.calls += page.calls
    session.execute(
        text("UPDATE job_runs SET orders = :o, cancellations = :c, calls = :n WHERE id = :id"),
        {"o": outcome.orders, "c": outcome.cancellations, "n": outcome.calls, "id": run_id},
    )


def _warn(session: Session, run: DueRun, warnings: dict[str, str], outcome: PullOutcome, now) -> None:
    """A warning event (and alert) per kind the source reported, once a day per schedule: the pull
    went through, but the ops team should act before it does not."""
    for kind, message in warnings.items():
        # A warning with an alert (wheel/events.py alerts errors only, by default).
        recorded = record(session, replace(cron_event(
            run, "warning", level="warning", key=f"schedule:{run.schedule_id}:warning:{kind}:{now().date().isoformat()}",
            payload={"kind": kind, "error": message}), alert=True))
        if recorded.created:
            outcome.alerts.append(recorded)


def _note_waiting(sessions, run: DueRun, why: str) -> None:
    with sessions.begin() as session:
        session.execute(
            text("UPDATE job_runs SET enqueued_at = now() WHERE id = :id"), {"id": run.run_id}
        )
        session.execute(
            text("UPDATE schedules SET last_outcome = 'waiting', last_error = :e WHERE id = :id"),
            {"e": why, "id": run.schedule_id},
        )


def _finish(session: Session, run: DueRun, schedule: Schedule, status: str, error: str | None, at: datetime) -> None:
    session.execute(
        text("UPDATE job_runs SET status = :s, finished_at = :at, error = :e WHERE id = :id"),
        {"s": status, "at": at, "e": error, "id": run.run_id},
    )
    schedule.last_finished_at, schedule.last_outcome, schedule.last_error = at, status, error


def _fail(sessions, run: DueRun, exc: Exception, outcome: PullOutcome, now) -> PullOutcome:
    outcome.status = "failed"
    message = str(exc) or type(exc).__name__
    with sessions.begin() as session:
        schedule = session.get(Schedule, run.schedule_id, with_for_update=True)
        _finish(session, run, schedule, "failed", message, now())
        if isinstance(exc, (TransientError, AuthError)) or schedule.cursor is None:
            resumes = "the next run carries on from where this one stopped"
        else:
            # Refused outright while paging (a page token the marketplace no longer takes, a cursor
            # Wheel cannot read): the next run pulls the window again from its start, which the
            # upserts make harmless.
            schedule.cursor = None
            resumes = "the next run pulls the window again from its start"
        recorded = record_cron(session, run, "failed", level="error", key=f"run:{run.run_id}:failed",
                               payload={"error": message, "resumes": resumes})
    outcome.alerts.append(recorded)
    return outcome


# -- storing a page ---------------------------------------------------------------------------


def _header(channel: Channel) -> dict[str, str]:
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


def message_id_for(outbox_id: int) -> str:
    """The OMS message id of an outbox row: stable, so a re-put after a crash carries the same id.
    24 characters, the size of an IBM MQ MsgId."""
    return f"WHEEL-OUTBOX-{outbox_id:011d}"


def _outbox(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Write outbox rows (kind, channel_id, order_id, queue, body, event_id) in one statement;
    their ids, in order. The message id is derived from the row id, so it is drawn first."""
    if not rows:
        return []
    ids = list(session.execute(
        text("SELECT nextval(pg_get_serial_sequence('outbox', 'id')) FROM generate_series(1, :n)"), {"n": len(rows)}
    ).scalars())
    session.execute(insert(OutboxMessage).values([
        {**row, "id": outbox_id, "message_id": message_id_for(outbox_id)} for outbox_id, row in zip(ids, rows)
    ]))
    return ids


def _store_page(session: Session, run: DueRun, channel: Channel, page: OrderPage, queues: OmsQueues,
                outcome: PullOutcome) -> None:
    header = _header(channel)
    # An order and a cancellation of it stored at once (the orders and cancellations pulls run side
    # by side) must see each other: lock each order id for the transaction, in one order (no deadlock).
    keys = sorted({f"order:{channel.id}:{oid}" for oid in
                   {o.order_id for o in page.orders} | {c.order_id for c in page.cancellations}
                   | {f.order_id for f in page.failures} | {r.order_id for r in page.requests}})
    if keys:
        session.execute(text("SELECT count(pg_advisory_xact_lock(hashtext(k))) FROM "
                             "(SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS sorted"), {"keys": keys})
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


def _store_orders(session: Session, run: DueRun, channel: Channel, page: OrderPage, header: dict[str, str],
                  queues: OmsQueues, outcome: PullOutcome) -> None:
    """A page's orders in a few statements: upsert them all, and for the new ones (or ones that
    failed to map before) their `order/received` events and outbox rows."""
    documents: dict[str, tuple[Order, bytes]] = {}
    for order in page.orders:
        try:
            _check_total(order)
            documents[order.order_id] = (order, order_document(order, header))
        except ValueError as exc:
            raw = page.raw.get(order.order_id)
            _store_failure(session, run, channel, Unmappable(channel.id, order.order_id, "order", str(exc), raw), outcome)
    if not documents:
        return
    table = OrderRow.__table__
    statement = insert(table).values([{
        "channel_id": channel.id, "order_id": order.order_id, "status": "ready", "document": order_to_json(order),
        "raw": page.raw.get(order.order_id), "lines": len(order.lines), "total": _total(order),
    } for order, _ in documents.values()])
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.channel_id, table.c.order_id],
        set_={"status": "ready", "document": statement.excluded.document, "raw": statement.excluded.raw,
              "failure": None, "lines": statement.excluded.lines, "total": statement.excluded.total},
        where=table.c.status == "failed",
    ).returning(table.c.id, table.c.order_id)
    stored = {order_id: row_id for row_id, order_id in session.execute(statement)}
    new = [documents[order_id] for order_id in documents if order_id in stored]  # page order
    _note_grown(session, run, channel, [documents[oid][0] for oid in documents if oid not in stored], outcome)
    if not new:
        return  # all stored before: an overlap or a re-run
    received = record_many(session, [_event(run, "order/received", parent_id=outcome.parent_id, key=f"order:{channel.id}:{order.order_id}:received", payload={
        "order_id": order.order_id, "lines": len(order.lines), "total": str(_total(order)),
        "skus": [line.sku for line in order.lines][:20],
    }) for order, _ in new])
    session.execute(
        text("UPDATE orders o SET event_id = t.event_id FROM unnest(CAST(:ids AS bigint[]), CAST(:events AS bigint[])) "
             "AS t(id, event_id) WHERE o.id = t.id"),
        {"ids": [stored[order.order_id] for order, _ in new], "events": [r.id for r in received]},
    )
    _outbox(session, [{"kind": "order", "channel_id": channel.id, "order_id": order.order_id, "queue": queues.orders,
                       "body": body, "event_id": event.id} for (order, body), event in zip(new, received)])
    outcome.orders += len(new)
    outcome.outboxed += len(new)
    # Cancellations that arrived before their order go out now, after it (expired ones too: the
    # OMS must never ship an order the marketplace cancelled).
    held = session.execute(
        select(CancelledLineRow).where(CancelledLineRow.channel_id == channel.id,
                                       CancelledLineRow.status.in_(("held", "expired")),
                                       CancelledLineRow.order_id.in_([order.order_id for order, _ in new]))
        .order_by(CancelledLineRow.id)
    ).scalars().all()
    events = {order.order_id: event.id for (order, _), event in zip(new, received)}
    for order_id in dict.fromkeys(row.order_id for row in held):
        rows = [row for row in held if row.order_id == order_id]
        order = documents[order_id][0]
        never_sent = _not_in(rows, order.lines)
        if never_sent:
            _note_not_sent(session, run, channel, order_id, never_sent, outcome)
            session.execute(delete(CancelledLineRow).where(CancelledLineRow.id.in_([r.id for r in never_sent])))
            rows = [row for row in rows if row not in never_sent]
            if not rows:
                continue
        released = Cancellation(channel.id, order_id,
                                tuple(CancelledLine(r.line_id, r.sku, r.quantity) for r in rows if r.line_id != "*"),
                                rows[0].reason_code, rows[0].reason_text, any(r.whole_order for r in rows))
        _outbox_cancellation(session, run, channel, released, [r.id for r in rows], events[order_id], header, queues,
                             outcome, order_lines=order.lines)


def _note_grown(session: Session, run: DueRun, channel: Channel, seen: list[Order], outcome: PullOutcome) -> None:
    """Orders stored before that come back with lines the stored order lacks (Flipkart splits an
    order into shipments, and two shipments can come on different pages or pulls). The OMS has the
    order already; a second document for it would clash. Say so, loudly, with the lines: nothing
    is dropped in silence."""
    if not seen:
        return
    rows = session.execute(
        text("SELECT order_id, document FROM orders WHERE channel_id = :c AND order_id = ANY(:ids) AND document IS NOT NULL"),
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


def _check_total(order: Order) -> None:
    """An order whose total Wheel cannot store is unmappable (kept, said), not a page that fails for ever."""
    total = _total(order)
    if abs(total) >= MAX_TOTAL + Decimal("0.005"):  # what Postgres would round up past the column
        raise ValueError(f"the order's total {total} is above {MAX_TOTAL}, the most Wheel stores")


def _store_failure(session: Session, run: DueRun, channel: Channel, failure: Unmappable, outcome: PullOutcome) -> None:
    if failure.kind == "cancellation":
        recorded = record(session, _event(run, "cancellation/failed", level="error", parent_id=outcome.parent_id,
                                          key=f"cancel-failed:{channel.id}:{failure.order_id}:{_digest(failure.reason)}",
                                          payload={"order_id": failure.order_id, "error": failure.reason, "raw": failure.raw}))
    else:
        row_id = session.execute(
            insert(OrderRow).values(channel_id=channel.id, order_id=failure.order_id, status="failed",
                                    raw=failure.raw, failure=failure.reason)
            .on_conflict_do_nothing(index_elements=["channel_id", "order_id"]).returning(OrderRow.id)
        ).scalar_one_or_none()
        if row_id is None:
            _store_failure_of_known(session, run, channel, failure, outcome)
            return
        recorded = record(session, _event(run, "order/failed", level="error", parent_id=outcome.parent_id,
                                          key=f"order:{channel.id}:{failure.order_id}:failed",
                                          payload={"order_id": failure.order_id, "error": failure.reason,
                                                   "fix": "the order is kept (wheelctl orders list --status failed); "
                                                          "a later pull that maps it sends it"}))
        session.execute(text("UPDATE orders SET event_id = :e WHERE id = :id"), {"e": recorded.id, "id": row_id})
    outcome.failures += 1
    if recorded.created:
        outcome.alerts.append(recorded)


def _store_failure_of_known(session: Session, run: DueRun, channel: Channel, failure: Unmappable,
                            outcome: PullOutcome) -> None:
    """An order stored before comes back unmappable. One that failed before is reported already. One
    the OMS has (or is about to get) keeps its status, but what Amazon now says of it cannot be
    read: whatever changed (a cancellation Wheel could not see, a new address) may not reach the
    OMS. Said once per reason, with an alert, and kept on the order (`wheelctl orders list`)."""
    row = session.execute(
        select(OrderRow.id, OrderRow.status, OrderRow.event_id)
        .where(OrderRow.channel_id == channel.id, OrderRow.order_id == failure.order_id).with_for_update()
    ).first()
    if row is None or row.status == "failed":
        return
    session.execute(text("UPDATE orders SET failure = :f WHERE id = :id"), {"f": failure.reason, "id": row.id})
    recorded = record(session, _event(
        run, "order/failed-after-sent", level="error", parent_id=row.event_id,
        key=f"order:{channel.id}:{failure.order_id}:failed-after-sent:{_digest(failure.reason)}",
        payload={"order_id": failure.order_id, "status": row.status, "error": failure.reason, "raw": failure.raw,
                 "fix": f"Wheel sent order {failure.order_id} to the OMS (or is sending it: {row.status}); compare "
                        f"it with the marketplace by hand, as a change to it may not have reached the OMS"}))
    outcome.failures += 1
    if recorded.created:
        outcome.alerts.append(recorded)


def _store_request(session: Session, run: DueRun, channel: Channel, request: CancellationRequest,
                   outcome: PullOutcome) -> None:
    """A buyer asking to cancel lines: not a cancellation (the OMS is not told), but the seller must
    answer before shipping. Said once per set of lines asked for, with an alert."""
    line_ids = [line.line_id for line in request.lines]
    parent = session.execute(
        select(OrderRow.event_id).where(OrderRow.channel_id == channel.id, OrderRow.order_id == request.order_id)
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


def _store_cancellation(session: Session, run: DueRun, channel: Channel, cancellation: Cancellation,
                        header: dict[str, str], queues: OmsQueues, outcome: PullOutcome) -> None:
    order_row = session.execute(
        select(OrderRow.status, OrderRow.document, OrderRow.event_id)
        .where(OrderRow.channel_id == channel.id, OrderRow.order_id == cancellation.order_id).with_for_update()
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
            insert(CancelledLineRow).values(
                channel_id=channel.id, order_id=cancellation.order_id, line_id=line.line_id, sku=line.sku,
                quantity=line.quantity, reason_code=cancellation.reason_code, reason_text=cancellation.reason_text,
                whole_order=cancellation.whole_order, status="ready" if known else "held",
            ).on_conflict_do_nothing(index_elements=["channel_id", "order_id", "line_id"]).returning(CancelledLineRow.id)
        ).scalar_one_or_none()
        if row_id is not None:
            new_ids.append(row_id)
            new_lines.append(line)
    if not new_ids:
        return  # every line was cancelled before: an overlap or a re-run
    fresh = Cancellation(channel.id, cancellation.order_id, tuple(l for l in new_lines if l.line_id != "*"),
                         cancellation.reason_code, cancellation.reason_text, cancellation.whole_order)
    if not known:
        recorded = record(session, _event(run, "cancellation/held", level="warning", parent_id=outcome.parent_id,
                                          key=f"cancel:{channel.id}:{cancellation.order_id}:{_digest(','.join(l.line_id for l in new_lines))}:held",
                                          payload={"order_id": cancellation.order_id, "lines": [l.line_id for l in new_lines],
                                                   "reason": "its order has not been received (or could not be mapped); "
                                                             "the cancellation goes to the OMS right after the order"}))
        outcome.cancellations += 1
        return
    order_lines = tuple(_lines_of(order_row.document))
    _outbox_cancellation(session, run, channel, fresh, new_ids, order_row.event_id, header, queues, outcome,
                         order_lines=order_lines)


def _sendable(session: Session, run: DueRun, channel: Channel, cancellation: Cancellation, row_ids: list[int],
              order_lines, outcome: PullOutcome) -> Cancellation | None:
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
            session.execute(text("UPDATE cancellations SET quantity = :q WHERE id = ANY(:ids) AND line_id = :l"),
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
        session.execute(text("UPDATE cancellations SET status = 'sent' WHERE id = ANY(:ids)"), {"ids": row_ids})
        return None
    return Cancellation(cancellation.channel_id, cancellation.order_id, tuple(keep), cancellation.reason_code,
                        cancellation.reason_text, cancellation.whole_order)


def _not_in(lines: Sequence[Any], order_lines: Sequence[Any]) -> list[Any]:
    """The cancelled lines (or ledger rows) that are no line of the order the OMS was sent: a
    marketplace adapter leaves an item cancelled before the import out of the order (Flipkart)."""
    sent = {str(line.line_id) for line in order_lines}
    return [line for line in lines if sent and line.line_id != "*" and str(line.line_id) not in sent]


def _note_not_sent(session: Session, run: DueRun, channel: Channel, order_id: str, lines: Sequence[Any],
                   outcome: PullOutcome) -> None:
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


def _outbox_cancellation(session: Session, run: DueRun, channel: Channel, cancellation: Cancellation, row_ids: list[int],
                         parent_id: int | None, header: dict[str, str], queues: OmsQueues, outcome: PullOutcome,
                         *, order_lines) -> None:
    all_line_ids = {line.line_id for line in order_lines}
    cancellation = _sendable(session, run, channel, cancellation, row_ids, order_lines, outcome)
    if cancellation is None:
        return
    earlier = session.execute(
        select(CancelledLineRow.line_id).where(
            CancelledLineRow.channel_id == channel.id, CancelledLineRow.order_id == cancellation.order_id,
            CancelledLineRow.id.not_in(row_ids))
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
    [outbox_id] = _outbox(session, [{"kind": "cancellation", "channel_id": channel.id, "order_id": cancellation.order_id,
                                     "queue": queues.cancellations, "body": body, "event_id": recorded.id}])
    session.execute(text("UPDATE cancellations SET status = 'ready', outbox_id = :o WHERE id = ANY(:ids)"),
                    {"o": outbox_id, "ids": row_ids})
    outcome.cancellations += 1
    outcome.outboxed += 1
