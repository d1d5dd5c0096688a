"""The health check's eyes on the broker, and the timer that runs it inside a worker.

Beat sends the `wheel.system.health` task every WHEEL_HEALTH_CHECK_INTERVAL_S, but a check that
only beat starts cannot say that beat has stopped. So every worker that consumes the `oms` queue
also runs the check itself, on a thread of its main process started when the worker is ready
(Celery's `worker_ready` signal) and stopped at `worker_shutdown`. A thread, not a bootstep on
the worker's timer: the check waits on Postgres, Redis and a broadcast to the workers, and the
worker's timer is its event loop's (a slow callback there would hold up consuming). Checks from
beat and from several workers may overlap; the check takes a lock and is idempotent
(wheel/services/health.py), so they only repeat each other.

Queue depths: Celery's Redis transport keeps each queue as a Redis list named after it, with one
more list per priority step (`name\\x06\\x16<priority>`) when priorities are used
(https://docs.celeryq.dev/en/stable/userguide/routing.html#redis-message-priorities). Consumers:
`inspect().active_queues()`, the queues each worker that answers within the timeout consumes.
"""

from __future__ import annotations

import logging
import os
import threading

import redis
from celery import Celery, signals

from wheel.services import health
from wheel.settings import Settings
from workers import bootstrap, queues
from workers.dispatch import Dispatcher

log = logging.getLogger("wheel.health")

PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)  # kombu's default steps besides 0, which is the plain list


def queue_depths(client: redis.Redis, names: tuple[str, ...]) -> dict[str, int]:
    pipe = client.pipeline()
    for name in names:
        pipe.llen(name)
        for step in PRIORITY_STEPS:
            pipe.llen(f"{name}{PRIORITY_SEP}{step}")
    lengths = pipe.execute()
    width = 1 + len(PRIORITY_STEPS)
    return {name: sum(lengths[i * width:(i + 1) * width]) for i, name in enumerate(names)}


def consumers(app: Celery, timeout_s: float) -> dict[str, int]:
    """How many workers consume each queue (the workers that answered within the timeout)."""
    with app.connection_for_write() as connection:
        answers = app.control.inspect(timeout=timeout_s, connection=connection).active_queues() or {}
    counts: dict[str, int] = {}
    for worker_queues in answers.values():
        for queue in worker_queues or []:
            counts[queue["name"]] = counts.get(queue["name"], 0) + 1
    return counts


def celery_queues(app: Celery, settings: Settings) -> dict[str, health.QueueStat] | None:
    """Depth and consumers of every Wheel queue; None when Redis or the broadcast failed."""
    try:
        client = bootstrap.redis_client(settings)
        try:
            depths = queue_depths(client, queues.ALL_QUEUES)
        finally:
            client.close()
        counts = consumers(app, settings.health_inspect_timeout_s)
    except Exception as exc:  # noqa: BLE001 - the check says it could not look, and looks again next time
        log.warning("could not read the Celery queues: %s", exc)
        return None
    return {name: health.QueueStat(depths[name], counts.get(name, 0)) for name in queues.ALL_QUEUES}


def backout_depth(settings: Settings) -> int | None:
    try:
        transport = bootstrap.transport(settings)
        transport.connect()
        try:
            return transport.depth(settings.queue_backout)
        finally:
            transport.close()
    except Exception as exc:  # noqa: BLE001 - as above; the transport's errors never carry the password
        log.warning("could not count the OMS backout queue %s: %s", settings.queue_backout, exc)
        return None


def broker_view(app: Celery, settings: Settings) -> health.Broker:
    return health.Broker(celery_queues(app, settings), settings.queue_backout, backout_depth(settings))


def check(app: Celery, sessions, settings: Settings) -> health.CheckReport:
    """Run every check, then send the alerts of those that opened."""
    report = health.run_checks(sessions, health.Thresholds.from_settings(settings), broker_view(app, settings))
    dispatch = Dispatcher(app)
    for recorded in report.opened:
        if recorded.created:
            dispatch.alert(recorded.id)
    return report


class HealthTimer:
    """Runs the check every interval on a daemon thread, until stopped."""

    def __init__(self, app: Celery, settings: Settings):
        self.app, self.settings = app, settings
        self._stop = threading.Event()
        self._sessions = bootstrap.sessions(settings, "wheel-health", pool_size=1)
        engine = self._sessions.kw["bind"]
        # The prefork pool forks after this: a child must not use (or close) the parent's connections
        # (https://docs.sqlalchemy.org/en/20/core/pooling.html#using-connection-pools-with-multiprocessing-or-os-fork).
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
        self._thread = threading.Thread(target=self._run, name="wheel-health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.health_check_interval_s):
            try:
                report = check(self.app, self._sessions, self.settings)
                if report.opened or report.cleared:
                    log.info("health: %d alerts opened, %d cleared", len(report.opened), len(report.cleared))
            except Exception as exc:  # noqa: BLE001 - Postgres may be down; the timer must keep going
                log.error("health check failed (will run again): %s", exc)


_timer: HealthTimer | None = None


@signals.worker_ready.connect
def _start_timer(sender=None, **_kwargs) -> None:
    global _timer
    app = sender.app
    consumed = set(app.amqp.queues.consume_from or app.amqp.queues)
    if queues.OMS_QUEUE in consumed and _timer is None:
        _timer = HealthTimer(app, app.wheel_settings)
        _timer.start()
        log.info("health checks every %gs in this worker (it consumes %s)", app.wheel_settings.health_check_interval_s,
                 queues.OMS_QUEUE)


@signals.worker_shutdown.connect
def _stop_timer(**_kwargs) -> None:
    if _timer is not None:
        _timer.stop()
