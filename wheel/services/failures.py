"""Work a task could not finish: said as an error event, never left to loop in silence.

Two causes. The task raised an error outside the expected ones (a bug, a value Postgres refuses);
or its worker process died every time it ran it (killed, out of memory, a crash in a C library),
which Celery would deliver again for ever (acks_late with reject_on_worker_lost). Either way the
task ends after a bounded number of attempts, with an event to alert on. Where the work is a row
with an end state, the caller also sets it aside (an OMS message failed and replayable, a scheduled
run failed); the rest (a channel's sync, the publisher) is re-driven by the sweeper, so only the
event is written here.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Channel
from wheel.events import NewEvent, Recorded, record

TASK_FAILED = "system/task-failed"
TASK_ABANDONED = "system/task-abandoned"


def abandoned_error(deliveries: int) -> str:
    return (f"the task was started {deliveries} times and its worker process died every time (killed, out of "
            "memory or crashed), so it is not run again")


def record_task_failure(
    sessions: sessionmaker[Session], *, task: str, args: list[Any], error: str, task_id: str | None,
    abandoned: bool, channel_id: str | None = None, level: str = "error", fix: str | None = None,
) -> Recorded:
    """One event for a task that failed (`system/task-failed`: once an hour per task, arguments and
    error) or was abandoned (`system/task-abandoned`: once per task id)."""
    if abandoned:
        name, key = TASK_ABANDONED, f"task:{task_id}:abandoned"
    else:
        hour = datetime.now(timezone.utc).strftime("%Y%m%d%H")
        name, key = TASK_FAILED, f"task:{task}:{_digest(json.dumps(args, default=str))}:{_digest(error)}:{hour}"
    with sessions.begin() as session:
        marketplace = (session.execute(select(Channel.marketplace).where(Channel.id == channel_id)).scalar_one_or_none()
                       if channel_id else None)
        return record(session, NewEvent(
            type="system", name=name, level=level, channel_id=channel_id, marketplace=marketplace,
            payload={"task": task, "args": _jsonable(args), "task_id": task_id, "error": error,
                     "fix": fix or "see the worker's log for the traceback; the work is re-driven by the sweeper"},
            dedupe_key=key,
        ))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _jsonable(args: list[Any]) -> list[Any]:
    return [a if isinstance(a, (int, float, str, bool)) or a is None else repr(a)[:200] for a in args]


def error_text(exc: BaseException, limit: int = 500) -> str:
    """An exception as an event says it: its type and message, cut short (a DataError's message
    carries its SQL and parameters)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:limit] if text else type(exc).__name__
