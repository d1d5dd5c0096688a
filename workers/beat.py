"""Celery Beat with its schedules in Postgres: `celery -A workers.app beat -S workers.beat:DatabaseScheduler`.

Every tick (WHEEL_BEAT_TICK_S) it fires the schedules that are due (see wheel.services.schedules:
runs are rows first, unique per schedule and due time, so a restarted beat neither skips nor
doubles a run, and a second beat fires nothing twice) and then sends their tasks. Edits made with
`wheelctl jobs ...` are read on the next tick, with no restart. The static entries of
`beat_schedule` (the sweeper) run as usual. With Sentry configured, beat checks in with Sentry
Crons as monitor "wheel-beat" every WHEEL_SENTRY_CHECKIN_INTERVAL_S (wheel/observability.py).
"""

from __future__ import annotations

import logging
import time

from celery.beat import Scheduler
from sqlalchemy.exc import SQLAlchemyError

from wheel.observability import BeatMonitor
from wheel.services import health, schedules
from workers.bootstrap import dispatcher, sessions

log = logging.getLogger("wheel.beat")


class DatabaseScheduler(Scheduler):
    # Beat keeps nothing on disk: the schedules, their next run and every run are in Postgres.
    persistent = False

    def __init__(self, *args, **kwargs):
        self._sessions = None
        self._dispatch = None
        super().__init__(*args, **kwargs)
        settings = self.app.wheel_settings
        self._tick_s = settings.beat_tick_s
        # Checks in with Sentry Crons when Sentry is configured (beat_init, workers/app.py).
        self._monitor = BeatMonitor(settings.sentry_checkin_interval_s)
        self.max_interval = min(self.max_interval or self._tick_s, self._tick_s)

    def _db_tick(self) -> None:
        if self._sessions is None:
            settings = self.app.wheel_settings
            self._sessions = sessions(settings, "wheel-beat")
            self._dispatch = dispatcher(self.app)
        with self._sessions.begin() as session:
            fired = schedules.fire_due(session)
            # Beat's heartbeat: the health check says so when it grows old (wheel/services/health.py).
            health.beat_ticked(session)
        # Sent after the commit: a run is a row before it is a task. A send lost here is re-sent
        # by the sweeper (schedules.stale_runs).
        for run in fired:
            self._dispatch.run_job(run.run_id, run.marketplace)
            log.info("fired %s for %s (run %d, due %s, %s)", run.job, run.channel_id, run.run_id,
                     run.due_at.isoformat(timespec="seconds"), run.trigger)

    def tick(self, *args, **kwargs):
        started = time.monotonic()
        try:
            self._db_tick()
        except SQLAlchemyError as exc:
            log.error("could not read the schedules from Postgres (will retry): %s", exc)
        except Exception as exc:  # noqa: BLE001 - the broker may be down; beat must keep going
            log.error("could not send scheduled runs (will retry; the sweeper re-sends lost ones): %s", exc)
        try:
            self._monitor.tick()
        except Exception as exc:  # noqa: BLE001 - a report that cannot be sent must not stop beat
            log.warning("could not check in with Sentry: %s", exc)
        static_wait = super().tick(*args, **kwargs)
        elapsed = time.monotonic() - started
        return max(0.0, min(static_wait, self._tick_s - elapsed))
