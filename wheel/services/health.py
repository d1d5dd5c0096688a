"""Health checks: what error events never say, because nothing happened.

A pull that stopped succeeding, desired state that has not reached a marketplace, messages in the
OMS backout queue, an outbox nobody publishes, beat not ticking, a Celery queue with work and no
consumer. Each check gives findings; `reconcile` keeps one open row per (check, subject) in
`health_alerts`, records an error event when it opens (the alert path sends it to Slack) and an
info event when it clears. A check that could not look (the broker did not answer) neither opens
nor clears anything.

The broker's figures (queue depths, consumers, the backout queue's depth) are read by the caller
(workers/health.py) and passed in: this module talks to Postgres only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from wheel.events import NewEvent, Recorded, record
from wheel.services.schedules import next_after, utcnow
from wheel.settings import Settings

PULL_LAG, UNSYNCED, OUTBOX, BEAT, BACKOUT, NO_CONSUMER = (
    "pull-lag", "unsynced", "outbox", "beat", "backout", "no-consumer")
DATABASE_CHECKS = (PULL_LAG, UNSYNCED, OUTBOX, BEAT)
HEALTH_LOCK = 0x77686C4E  # "whl" + health: one reconcile at a time (beat's task and workers' timers)
BEAT_HEARTBEAT = "beat"

# Outboxes, by name: the SQL that gives the oldest waiting row's time and how many wait. Another
# outbox (alerts, ...) adds its entry here and is then checked and shown by `wheelctl status`.
OUTBOXES: dict[str, str] = {
    "oms": "SELECT min(created_at) AS oldest, count(*) AS waiting FROM outbox WHERE sent_at IS NULL",
    # Alerts not yet posted to Slack, including any a delivery claimed and never marked sent.
    "alerts": "SELECT min(created_at) AS oldest, count(*) AS waiting FROM alerts WHERE sent_at IS NULL",
}


@dataclass(frozen=True)
class Thresholds:
    pull_missed_intervals: float
    unsynced_max_age_s: float
    outbox_max_age_s: float
    beat_max_silence_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(settings.health_pull_missed_intervals, settings.health_unsynced_max_age_s,
                   settings.health_outbox_max_age_s, settings.health_beat_max_silence_s)


@dataclass(frozen=True)
class QueueStat:
    depth: int
    consumers: int


@dataclass(frozen=True)
class Broker:
    """What the caller read from Redis, the workers and the OMS transport; None: could not read."""

    queues: dict[str, QueueStat] | None = None
    backout_queue: str | None = None
    backout_depth: int | None = None


@dataclass(frozen=True)
class Finding:
    name: str
    subject: str
    message: str
    look: str  # the wheelctl command that shows more
    channel_id: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckReport:
    checked: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    opened: list[Recorded] = field(default_factory=list)
    cleared: list[Recorded] = field(default_factory=list)


def beat_ticked(session: Session, now: datetime | None = None) -> None:
    """Beat's heartbeat: written every tick, in the tick's transaction."""
    session.execute(text(
        "INSERT INTO heartbeats (name, at) VALUES (:name, :at) ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at"
    ), {"name": BEAT_HEARTBEAT, "at": now or utcnow()})


def heartbeat(session: Session, name: str = BEAT_HEARTBEAT) -> datetime | None:
    return session.execute(text("SELECT at FROM heartbeats WHERE name = :n"), {"n": name}).scalar_one_or_none()


# Each enabled schedule of an enabled channel, its last success (the newest succeeded run, found
# through the (schedule_id, due_at) index) and since when it has been on.
PULLS = text(
    """
    SELECT s.id, s.channel_id, s.job, s.cron, s.last_outcome, s.last_error,
           greatest(s.updated_at, c.updated_at) AS on_since, ok.finished_at AS last_success
      FROM schedules s JOIN channels c ON c.id = s.channel_id
      LEFT JOIN LATERAL (SELECT r.finished_at FROM job_runs r
                          WHERE r.schedule_id = s.id AND r.status = 'succeeded'
                          ORDER BY r.due_at DESC LIMIT 1) ok ON true
     WHERE s.enabled AND c.enabled
     ORDER BY s.channel_id, s.job
    """
)


def cron_interval(cron: str, now: datetime) -> timedelta:
    first = next_after(cron, now)
    return next_after(cron, first) - first


def pull_lag(session: Session, *, missed_intervals: float, now: datetime) -> list[Finding]:
    findings = []
    for row in session.execute(PULLS):
        interval = cron_interval(row.cron, now)
        since = max(t for t in (row.last_success, row.on_since) if t is not None)
        behind = now - since
        if behind <= interval * missed_intervals:
            continue
        what = (f"last succeeded {_seconds(behind)} ago" if row.last_success else "has not succeeded since it was switched on")
        why = f" (last outcome: {row.last_outcome}{': ' + row.last_error[:200] if row.last_error else ''})" \
            if row.last_outcome else ""
        findings.append(Finding(
            PULL_LAG, f"{row.channel_id}/{row.job}",
            f"the {row.job} pull of channel {row.channel_id} {what}, more than {missed_intervals:g} of its intervals "
            f"({_seconds(interval)}){why}",
            f"wheelctl jobs list --channel {row.channel_id}", row.channel_id,
            {"job": row.job, "last_success": row.last_success and row.last_success.isoformat(),
             "behind_s": round(behind.total_seconds(), 1), "interval_s": interval.total_seconds()},
        ))
    return findings


UNSYNCED_SQL = text(
    """
    SELECT DISTINCT ON (l.channel_id) l.channel_id, l.sku, l.dirty_since, l.last_error,
           count(*) OVER (PARTITION BY l.channel_id) AS skus
      FROM listings l JOIN channels c ON c.id = l.channel_id
     WHERE l.dirty AND c.enabled AND l.dirty_since < :before
     ORDER BY l.channel_id, l.dirty_since
    """
)


def unsynced(session: Session, *, max_age_s: float, now: datetime) -> list[Finding]:
    findings = []
    for row in session.execute(UNSYNCED_SQL, {"before": now - timedelta(seconds=max_age_s)}):
        error = f"; last error: {row.last_error[:200]}" if row.last_error else ""
        findings.append(Finding(
            UNSYNCED, row.channel_id,
            f"{_count(row.skus, 'SKU')} of channel {row.channel_id} {'has' if row.skus == 1 else 'have'} waited more than {_seconds(max_age_s)} to reach the "
            f"marketplace; the oldest, {row.sku}, for {_seconds(now - row.dirty_since)}{error}",
            f"wheelctl status; wheelctl events --channel {row.channel_id}", row.channel_id,
            {"skus": row.skus, "oldest_sku": row.sku, "oldest_since": row.dirty_since.isoformat()},
        ))
    return findings


def outbox_ages(session: Session) -> dict[str, tuple[datetime | None, int]]:
    out = {}
    for name, sql in OUTBOXES.items():
        row = session.execute(text(sql)).one()
        out[name] = (row.oldest, row.waiting)
    return out


def outbox_lag(session: Session, *, max_age_s: float, now: datetime) -> list[Finding]:
    findings = []
    for name, (oldest, waiting) in outbox_ages(session).items():
        if oldest is not None and (now - oldest).total_seconds() > max_age_s:
            findings.append(Finding(
                OUTBOX, name,
                f"{_count(waiting, 'message')} {'waits' if waiting == 1 else 'wait'} in the {name} outbox; the oldest for {_seconds(now - oldest)} "
                f"(more than {_seconds(max_age_s)}): is the publisher running, and the OMS broker up?",
                "wheelctl status; wheelctl events --name 'system/oms-publish-failed'",
                figures={"waiting": waiting, "oldest": oldest.isoformat()},
            ))
    return findings


def beat_silent(session: Session, *, max_silence_s: float, now: datetime) -> list[Finding]:
    last = heartbeat(session)
    if last is not None and (now - last).total_seconds() <= max_silence_s:
        return []
    said = f"last ticked {_seconds(now - last)} ago" if last else "has never ticked"
    return [Finding(BEAT, BEAT_HEARTBEAT,
                    f"celery beat {said}: no scheduled pulls are fired and the sweeper does not run; start it "
                    "(`celery -A workers.app beat`)",
                    "wheelctl status", figures={"last_tick": last and last.isoformat()})]


def broker_findings(broker: Broker) -> tuple[set[str], list[Finding]]:
    checked: set[str] = set()
    findings = []
    if broker.backout_depth is not None:
        checked.add(BACKOUT)
        if broker.backout_depth > 0:
            findings.append(Finding(
                BACKOUT, broker.backout_queue or "",
                f"{_count(broker.backout_depth, 'OMS message')} {'is' if broker.backout_depth == 1 else 'are'} in the backout queue {broker.backout_queue}: they were "
                "not processed; read them, fix the cause, and put them back",
                f"wheelctl oms tail {broker.backout_queue} --count 1; wheelctl events --name 'system/message-backed-out'",
                figures={"depth": broker.backout_depth},
            ))
    if broker.queues is not None:
        checked.add(NO_CONSUMER)
        for queue, stat in sorted(broker.queues.items()):
            if stat.depth > 0 and stat.consumers == 0:
                findings.append(Finding(
                    NO_CONSUMER, queue,
                    f"Celery queue {queue} holds {stat.depth} tasks and no worker consumes it: start one "
                    f"(`celery -A workers.app worker -Q {queue}`)",
                    "wheelctl status", figures={"depth": stat.depth},
                ))
    return checked, findings


def run_checks(sessions: sessionmaker[Session], thresholds: Thresholds, broker: Broker | None = None,
               now: datetime | None = None) -> CheckReport:
    """Run every check and bring `health_alerts` up to date. Send the alerts of `report.opened`
    after this returns (it has committed)."""
    now = now or utcnow()
    report = CheckReport()
    with sessions.begin() as session:
        # One checker at a time: beat's task and the workers' timers may run together.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": HEALTH_LOCK})
        report.findings += pull_lag(session, missed_intervals=thresholds.pull_missed_intervals, now=now)
        report.findings += unsynced(session, max_age_s=thresholds.unsynced_max_age_s, now=now)
        report.findings += outbox_lag(session, max_age_s=thresholds.outbox_max_age_s, now=now)
        report.findings += beat_silent(session, max_silence_s=thresholds.beat_max_silence_s, now=now)
        report.checked.update(DATABASE_CHECKS)
        if broker is not None:
            checked, findings = broker_findings(broker)
            report.checked |= checked
            report.findings += findings
        report.opened, report.cleared = reconcile(session, report.findings, report.checked, now)
    return report


OPEN_ALERTS = text("SELECT id, name, subject, opened_at, detail FROM health_alerts WHERE cleared_at IS NULL")


def reconcile(session: Session, findings: Iterable[Finding], checked: set[str],
              now: datetime) -> tuple[list[Recorded], list[Recorded]]:
    found = {(f.name, f.subject): f for f in findings}
    open_rows = {(r.name, r.subject): r for r in session.execute(OPEN_ALERTS)}
    opened, cleared = [], []
    for key, finding in found.items():
        detail = {"message": finding.message, "look": finding.look, "channel_id": finding.channel_id, **finding.figures}
        if key in open_rows:
            session.execute(text("UPDATE health_alerts SET detail = CAST(:d AS jsonb), checked_at = :now WHERE id = :id"),
                            {"d": _json(detail), "now": now, "id": open_rows[key].id})
            continue
        alert_id = session.execute(text(
            "INSERT INTO health_alerts (name, subject, opened_at, checked_at, detail) "
            "VALUES (:n, :s, :now, :now, CAST(:d AS jsonb)) RETURNING id"
        ), {"n": finding.name, "s": finding.subject, "now": now, "d": _json(detail)}).scalar_one()
        recorded = record(session, NewEvent(
            type="system", name=f"system.health/{finding.name}", level="error", channel_id=finding.channel_id,
            dedupe_key=f"health:{alert_id}:opened",
            payload={"subject": finding.subject, "alert": alert_id,
                     "error": f"{finding.message}{'' if finding.message.endswith('?') else '.'} Look: {finding.look}", "fix": finding.look, **finding.figures},
        ))
        session.execute(text("UPDATE health_alerts SET event_id = :e WHERE id = :id"), {"e": recorded.id, "id": alert_id})
        opened.append(recorded)
    for key, row in open_rows.items():
        if key in found or row.name not in checked:
            continue
        session.execute(text("UPDATE health_alerts SET cleared_at = :now, checked_at = :now WHERE id = :id"),
                        {"now": now, "id": row.id})
        cleared.append(record(session, NewEvent(
            type="system", name=f"system.health/{row.name}-cleared", level="info",
            channel_id=row.detail.get("channel_id"),
            dedupe_key=f"health:{row.id}:cleared",
            payload={"subject": row.subject, "alert": row.id, "opened_at": row.opened_at.isoformat(),
                     "open_for_s": round((now - row.opened_at).total_seconds(), 1),
                     "was": row.detail.get("message", "")},
        )))
    return opened, cleared


def open_alerts(session: Session) -> list[Any]:
    return list(session.execute(text(
        "SELECT id, name, subject, opened_at, detail, event_id FROM health_alerts WHERE cleared_at IS NULL ORDER BY opened_at"
    )))


def _json(value: dict[str, Any]) -> str:
    # Bound as text and cast to jsonb in the statement.
    return json.dumps(value, default=str)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _seconds(value: timedelta | float) -> str:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
