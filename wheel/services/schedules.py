"""Scheduled jobs in Postgres: one row per (channel, job), read by beat, edited at run time.

Beat calls `fire_due` every tick. It locks the due schedules (`FOR UPDATE SKIP LOCKED`), writes one
`job_runs` row per due time and moves `next_run_at` on, in one transaction. A run is unique per
(schedule, due time), so a second beat started by mistake finds nothing to fire and can never
fire the same run twice; a beat restarted late fires the runs it missed (at most `max_catchup`
per schedule; older ones are folded into the first, since a pull covers everything since its
watermark anyway). A run whose task was lost is sent again by the sweeper (`stale_runs`).

Each schedule reads its cron expression in a time zone of its own (`schedules.timezone`, an IANA
name): '0 9 * * *' in Asia/Kolkata fires at 03:30 UTC. croniter walks the local wall clock of that
zone, so a zone with daylight saving time keeps the local hour across the change
(https://github.com/pallets-eco/croniter#about-dst). Every time stored is UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from croniter import croniter
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from wheel.db.models import Channel, JobRun, Schedule
from wheel.domain import CANCELLATIONS, ORDER_JOBS, ORDERS
from wheel.events import NewEvent, Recorded, record
from wheel.marketplaces import AMAZON, FLIPKART, TATACLIQ
from wheel.timefmt import zone

# Defaults that respect each API's quota. Cron expressions have 5 fields, or 6 with seconds last
# ("* * * * * */10": every 10 seconds). Amazon's one searchOrders query (about 1 per 3 minutes
# sustained) serves both orders and cancellations, so Amazon has no cancellations job.
DEFAULT_CRON: dict[str, dict[str, str]] = {
    AMAZON: {ORDERS: "*/3 * * * *"},
    FLIPKART: {ORDERS: "* * * * *", CANCELLATIONS: "*/5 * * * *"},
    TATACLIQ: {ORDERS: "*/2 * * * *", CANCELLATIONS: "*/10 * * * *"},
}


class ScheduleError(ValueError):
    """A bad cron expression, an unknown job or channel: the message says which and why."""


@dataclass(frozen=True)
class DueRun:
    run_id: int
    schedule_id: int
    channel_id: str
    marketplace: str
    job: str
    due_at: datetime
    trigger: str


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def validate_cron(expression: str) -> str:
    expression = " ".join(expression.split())
    fields = expression.split(" ")
    if len(fields) not in (5, 6) or not croniter.is_valid(expression):
        raise ScheduleError(
            f"{expression!r} is not a cron expression: give 5 fields (minute hour day month weekday), "
            "or 6 with seconds last, e.g. '*/5 * * * *' or '* * * * * */10'"
        )
    return expression


def validate_timezone(tz_name: str) -> str:
    try:
        zone(tz_name)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None
    return tz_name


def next_after(expression: str, after: datetime, tz_name: str = "UTC") -> datetime:
    """The first time after `after` that the expression names, read in the zone `tz_name`; UTC."""
    local = after.astimezone(zone(tz_name))
    return croniter(expression, local).get_next(datetime).astimezone(timezone.utc)


def jobs_for(marketplace: str) -> tuple[str, ...]:
    return tuple(DEFAULT_CRON.get(marketplace, {}))


def ensure_schedules(session: Session, channel: Channel, *, jobs: dict[str, str] | None = None,
                     now: datetime | None = None, tz_name: str = "UTC") -> list[str]:
    """Create the channel's schedules that do not exist yet (defaults unless `jobs` says), enabled,
    their cron read in the zone `tz_name`. Returns the jobs created."""
    now = now or utcnow()
    tz_name = validate_timezone(tz_name)
    wanted = jobs if jobs is not None else DEFAULT_CRON.get(channel.marketplace, {})
    created = []
    for job, cron in wanted.items():
        cron = validate_cron(cron)
        row = session.execute(
            insert(Schedule)
            .values(channel_id=channel.id, job=job, cron=cron, timezone=tz_name,
                    next_run_at=next_after(cron, now, tz_name))
            .on_conflict_do_nothing(index_elements=["channel_id", "job"])
            .returning(Schedule.id)
        ).scalar_one_or_none()
        if row is not None:
            created.append(job)
    return created


def get(session: Session, channel_id: str, job: str, *, lock: bool = False) -> Schedule:
    if job not in ORDER_JOBS:
        raise ScheduleError(f"unknown job {job!r}; jobs are: {', '.join(ORDER_JOBS)}")
    query = select(Schedule).where(Schedule.channel_id == channel_id, Schedule.job == job)
    schedule = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if schedule is None:
        channel = session.get(Channel, channel_id)
        if channel is None:
            raise ScheduleError(f"no channel {channel_id}")
        served = jobs_for(channel.marketplace)
        hint = (" (Amazon's orders job pulls cancellations too)" if channel.marketplace == AMAZON and job == CANCELLATIONS
                else f"; it has: {', '.join(served) or 'none'}")
        raise ScheduleError(f"channel {channel_id} ({channel.marketplace}) has no {job} job{hint}")
    return schedule


def set_cron(session: Session, channel_id: str, job: str, expression: str, now: datetime | None = None, *,
             tz_name: str | None = None) -> Schedule:
    """Set a schedule's cron expression, read in the zone `tz_name` (None: the zone it has)."""
    expression = validate_cron(expression)
    if tz_name is not None:
        validate_timezone(tz_name)
    schedule = get(session, channel_id, job, lock=True)
    schedule.cron = expression
    if tz_name is not None:
        schedule.timezone = tz_name
    schedule.next_run_at = next_after(expression, now or utcnow(), schedule.timezone)
    schedule.updated_at = utcnow()
    return schedule


def set_enabled(session: Session, channel_id: str, job: str, enabled: bool, now: datetime | None = None) -> Schedule:
    schedule = get(session, channel_id, job, lock=True)
    schedule.enabled = enabled
    if enabled:
        # From now on: a schedule switched back on does not fire for the time it was off.
        schedule.next_run_at = next_after(schedule.cron, now or utcnow(), schedule.timezone)
    schedule.updated_at = utcnow()
    return schedule


SET_NEXT_RUN = text("UPDATE schedules SET next_run_at = :next WHERE id = :id")
DUE = text(
    """
    SELECT s.id, s.channel_id, s.job, s.cron, s.timezone, s.next_run_at, c.marketplace
      FROM schedules s JOIN channels c ON c.id = s.channel_id
     WHERE s.enabled AND c.enabled AND s.next_run_at <= :now
     ORDER BY s.next_run_at
     FOR UPDATE OF s SKIP LOCKED
    """
)


def fire_due(session: Session, now: datetime | None = None, *, max_catchup: int = 5) -> list[DueRun]:
    """Write a run for every due time that has passed and move the schedules on. Send the runs'
    tasks after the transaction commits."""
    now = now or utcnow()
    fired: list[DueRun] = []
    for row in session.execute(DUE, {"now": now}).all():
        due_times = [row.next_run_at]
        following = next_after(row.cron, row.next_run_at, row.timezone)
        while following <= now:
            due_times.append(following)
            following = next_after(row.cron, following, row.timezone)
        missed = max(0, len(due_times) - max_catchup)
        if missed:
            # A pull covers everything since its watermark: fire the latest few, report the rest.
            record(session, NewEvent(
                type="system", name="system.cron/missed", level="warning", channel_id=row.channel_id,
                marketplace=row.marketplace,
                payload={"job": row.job, "missed": missed, "since": due_times[0].isoformat(),
                         "note": "beat was not running; the next pull covers the whole gap"},
            ))
            due_times = due_times[missed:]
        for index, due_at in enumerate(due_times):
            trigger = "cron" if index == len(due_times) - 1 else "catch-up"
            run_id = session.execute(
                insert(JobRun).values(schedule_id=row.id, due_at=due_at, trigger=trigger)
                .on_conflict_do_nothing(index_elements=["schedule_id", "due_at"]).returning(JobRun.id)
            ).scalar_one_or_none()
            if run_id is not None:
                fired.append(DueRun(run_id, row.id, row.channel_id, row.marketplace, row.job, due_at, trigger))
        session.execute(SET_NEXT_RUN, {"next": following, "id": row.id})
    return fired


def run_now(session: Session, channel_id: str, job: str, now: datetime | None = None) -> DueRun:
    schedule = get(session, channel_id, job)
    channel = session.get(Channel, channel_id)
    due_at = now or utcnow()
    run_id = session.execute(
        insert(JobRun).values(schedule_id=schedule.id, due_at=due_at, trigger="manual").returning(JobRun.id)
    ).scalar_one()
    return DueRun(run_id, schedule.id, channel_id, channel.marketplace, job, due_at, "manual")


STALE_RUNS = text(
    """
    UPDATE job_runs r SET enqueued_at = now()
      FROM schedules s, channels c
     WHERE s.id = r.schedule_id AND c.id = s.channel_id
       AND r.id IN (SELECT id FROM job_runs
                     WHERE status IN ('due', 'running') AND enqueued_at < now() - make_interval(secs => :deadline)
                     ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING r.id, r.schedule_id, s.channel_id, c.marketplace, s.job, r.due_at, r.trigger
    """
)


def stale_runs(session: Session, *, deadline_s: float, limit: int = 1000) -> list[DueRun]:
    """Runs not finished long after their task was last sent: their task was lost (or the worker
    died); send them again. A duplicate finds the pull's lock taken, or the run finished."""
    rows = session.execute(STALE_RUNS, {"deadline": deadline_s, "limit": limit}).all()
    return [DueRun(r.id, r.schedule_id, r.channel_id, r.marketplace, r.job, r.due_at, r.trigger) for r in rows]


def cron_event(run: DueRun, name: str, *, level: str = "info", payload: dict | None = None,
               key: str | None = None) -> NewEvent:
    return NewEvent(
        type="system", name=f"system.cron/{name}", level=level, channel_id=run.channel_id, marketplace=run.marketplace,
        payload={"job": run.job, "run": run.run_id, "due_at": run.due_at.isoformat(), "trigger": run.trigger,
                 **(payload or {})},
        dedupe_key=key,
    )


def record_cron(session: Session, run: DueRun, name: str, **kwargs) -> Recorded:
    return record(session, cron_event(run, name, **kwargs))


def last_runs(session: Session, schedule_ids: list[int]) -> dict[int, JobRun]:
    """The latest run of each schedule."""
    rows = session.execute(
        select(JobRun).distinct(JobRun.schedule_id).where(JobRun.schedule_id.in_(schedule_ids))
        .order_by(JobRun.schedule_id, JobRun.due_at.desc())
    ).scalars()
    return {run.schedule_id: run for run in rows}
