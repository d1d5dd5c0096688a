"""The Celery app, configured from settings. `celery -A workers.app worker -Q ...` runs it."""

from __future__ import annotations

from celery import Celery, signals
from kombu import Queue

from wheel.observability import init_sentry
from wheel.settings import Settings
from workers import queues


def create_app(settings: Settings) -> Celery:
    # Every task counts its starts and ends in an event when it cannot finish (workers/guard.py).
    app = Celery("wheel", broker=settings.redis_url, task_cls="workers.guard:WheelTask")
    visibility = settings.visibility_timeout_s
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        # A task is acknowledged when it has finished, so a killed worker's task is redelivered;
        # tasks are idempotent, so a redelivery is harmless. A task that kills its worker each time
        # is run at most WHEEL_TASK_MAX_DELIVERIES times (workers/guard.py).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=queues.OMS_QUEUE,
        task_queues=[Queue(name) for name in queues.ALL_QUEUES],
        task_routes=queues.TASK_ROUTES,
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # Look for unacknowledged tasks past their visibility timeout often enough that a
            # short timeout (tests) is honoured.
            "unacked_restore_interval": max(1, min(10, visibility // 4)),
            "unacked_restore_throttle": 1,
        },
        # Schedules live in Postgres (workers/beat.py); the sweeper and the retention purge stay static entries.
        beat_scheduler="workers.beat:DatabaseScheduler",
        beat_schedule={
            "sweep": {"task": queues.SWEEP, "schedule": settings.sweeper_interval_s},
            "purge": {"task": queues.PURGE, "schedule": settings.retention_interval_s},
        },
        worker_hijack_root_logger=False,
        # Flower shows tasks from the workers' events; a "sent" event per task would double the
        # cost of every publish from the bridge.
        worker_send_task_events=True,
        task_send_sent_event=False,
    )
    # On the app, not in app.conf: Celery's `conf` remote-control command (Flower's worker "Config"
    # tab) shows every conf key whose name does not look secret, and the settings carry the
    # database and Redis URLs with their passwords.
    app.wheel_settings = settings
    return app


@signals.worker_init.connect
def _init_sentry(**_kwargs) -> None:
    from sentry_sdk.integrations.celery import CeleryIntegration

    init_sentry(app.wheel_settings, component="wheel-worker", integrations=[CeleryIntegration()])


app = create_app(Settings())
# Register the tasks.
import workers.tasks  # noqa: E402,F401
