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

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.locks import TRY_LOCK, UNLOCK, schedule_lock
from wheel.db.models import Channel, JobRun, Schedule
from wheel.events import record
from wheel.marketplaces.base import OrderPage, OrderSource, PullWindow, QuotaGate, QuotaWait
from wheel.marketplaces.errors import AuthError, MarketplaceError, TransientError
from wheel.services.pull_store import OmsQueues, PullResult, store_page
from wheel.services.schedules import DueRun, cron_event, record_cron, utcnow

log = logging.getLogger(__name__)

# Retried runs (busy, quota) wait at least this long.
MIN_RETRY_S = 1.0
# Orders stored per transaction.
PART_SIZE = 250
# A page cursor older than this is dropped and its window pulled again from the start.
CURSOR_TTL = timedelta(hours=20)

SAVE_CURSOR = text("UPDATE schedules SET cursor = CAST(:c AS jsonb) WHERE id = :id")
COUNT_RUN = text("UPDATE job_runs SET orders = :o, cancellations = :c, calls = :n WHERE id = :id")
RUN_WAITING = text("UPDATE job_runs SET enqueued_at = now() WHERE id = :id")
SCHEDULE_WAITING = text("UPDATE schedules SET last_outcome = 'waiting', last_error = :e WHERE id = :id")
FINISH_RUN = text("UPDATE job_runs SET status = :s, finished_at = :at, error = :e WHERE id = :id")


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
) -> PullResult:
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
            return PullResult("skipped")
        run_row, schedule, channel = found
        run = DueRun(run_row.id, schedule.id, channel.id, channel.marketplace, schedule.job, run_row.due_at, run_row.trigger)
        if run_row.status in ("succeeded", "failed"):
            return PullResult("skipped", run)
        session.expunge_all()

    engine: Engine = sessions.kw["bind"]
    with engine.connect() as lock_conn:
        # Held on its own connection for the whole pull; a killed worker's connection drops and frees it.
        got = lock_conn.execute(TRY_LOCK, {"k": schedule_lock(schedule.id)}).scalar_one()
        lock_conn.commit()
        if not got:
            # Another task holds this schedule's pull. A run already started is that task's own
            # (this is a duplicate delivery): leave it. A run not started yet waits its turn.
            return PullResult("busy", run, retry_in_s=5.0 if run_row.status == "due" else None)
        try:
            return _pull_locked(sessions, run, channel, source_for, queues, worker, initial_lookback_s, on_stored, now)
        finally:
            lock_conn.execute(UNLOCK, {"k": schedule_lock(schedule.id)})
            lock_conn.commit()


def _pull_locked(sessions, run: DueRun, channel: Channel, source_for, queues: OmsQueues, worker: str,
                 initial_lookback_s: float, on_stored, now) -> PullResult:
    outcome = PullResult("succeeded", run)
    with sessions.begin() as session:
        run_row = session.get(JobRun, run.run_id, with_for_update=True)
        if run_row.status in ("succeeded", "failed"):
            return PullResult("skipped", run)
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
                        store_page(session, run, channel, part, queues, outcome)
                        if last:
                            next_cursor = ({"start": window.start.isoformat(), "end": window.end.isoformat(),
                                            "page": page.cursor, "at": now().isoformat()} if page.cursor is not None else None)
                            _save_cursor(session, run.schedule_id, next_cursor)
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


def fail_run(sessions: sessionmaker[Session], run_id: int, error: str, now: Callable[[], datetime] = utcnow) -> PullResult:
    """Fail a run its task could not finish (an error outside the expected ones, or a worker that
    died on it again and again): said with an error event to alert on, and the next run pulls the
    window again. A run already finished is left alone."""
    with sessions() as session:
        found = session.execute(
            select(JobRun, Schedule, Channel).join(Schedule, Schedule.id == JobRun.schedule_id)
            .join(Channel, Channel.id == Schedule.channel_id).where(JobRun.id == run_id)
        ).first()
    if found is None or found[0].status in ("succeeded", "failed"):
        return PullResult("skipped")
    run_row, schedule, channel = found
    run = DueRun(run_row.id, schedule.id, channel.id, channel.marketplace, schedule.job, run_row.due_at, run_row.trigger)
    return _fail(sessions, run, RuntimeError(error), PullResult("failed", run), now)


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


def _save_cursor(session: Session, schedule_id: int, cursor: dict[str, Any] | None) -> None:
    session.execute(SAVE_CURSOR, {"c": None if cursor is None else json.dumps(cursor), "id": schedule_id})


def _count(session: Session, run_id: int, outcome: PullResult, page: OrderPage) -> None:
    outcome.calls += page.calls
    session.execute(
        COUNT_RUN,
        {"o": outcome.orders, "c": outcome.cancellations, "n": outcome.calls, "id": run_id},
    )


def _warn(session: Session, run: DueRun, warnings: dict[str, str], outcome: PullResult, now) -> None:
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
        session.execute(RUN_WAITING, {"id": run.run_id})
        session.execute(SCHEDULE_WAITING, {"e": why, "id": run.schedule_id})


def _finish(session: Session, run: DueRun, schedule: Schedule, status: str, error: str | None, at: datetime) -> None:
    session.execute(
        FINISH_RUN,
        {"s": status, "at": at, "e": error, "id": run.run_id},
    )
    schedule.last_finished_at, schedule.last_outcome, schedule.last_error = at, status, error


def _fail(sessions, run: DueRun, exc: Exception, outcome: PullResult, now) -> PullResult:
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
