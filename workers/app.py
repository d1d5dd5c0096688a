"""The Celery app, configured from settings. `celery -A workers.app worker -Q ...` runs it.

Its configuration is built in workers/bootstrap.py, with every other collaborator. Logging is set
up as this module is loaded (the first thing `celery -A workers.app ...` does), so that even
Celery's first warnings are lines of the log format, and again when Celery sets up its logging:
with a receiver of `setup_logging`, Celery leaves the root logger to us and its own lines
("Task ... succeeded") go through our handler
(https://docs.celeryq.dev/en/stable/userguide/signals.html#setup-logging).
"""

from __future__ import annotations

import logging
import sys

from celery import signals

from wheel.settings import Settings
from workers import bootstrap

app = bootstrap.celery_app(Settings())
PROCESS = bootstrap.celery_process(sys.argv)
bootstrap.start_celery_logging(app, PROCESS)

log = logging.getLogger("wheel.worker")


@signals.setup_logging.connect
def _setup_logging(loglevel=None, **_kwargs) -> None:
    bootstrap.start_celery_logging(app, PROCESS, loglevel or logging.INFO)
    if PROCESS == "wheel-worker" and app.conf.worker_redirect_stdouts:
        # What a worker prints becomes log lines, as Celery does when it sets up logging itself
        # (https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-redirect-stdouts).
        app.log.redirect_stdouts_to_logger(logging.getLogger("celery.redirected"),
                                           app.conf.worker_redirect_stdouts_level)


@signals.celeryd_after_setup.connect
def _log_banner(instance=None, **_kwargs) -> None:
    # With JSON logs the worker prints no banner (workers/bootstrap.py): what it says is logged.
    if app.wheel_settings.log_format == "json" and instance is not None:
        log.info("worker starting:%s", instance.startup_info(artlines=False))


@signals.worker_shutting_down.connect
def _log_shutdown(sig=None, how=None, **_kwargs) -> None:
    if app.wheel_settings.log_format == "json":
        log.info("worker: %s shutdown on %s", how, sig)


@signals.worker_init.connect
def _worker_sentry(**_kwargs) -> None:
    bootstrap.start_celery_sentry(app, "wheel-worker")


@signals.worker_process_init.connect
def _pool_process_sentry(**_kwargs) -> None:
    # Again in each pool process, so that its reports carry its own pid.
    bootstrap.start_celery_sentry(app, "wheel-worker")


@signals.beat_init.connect
def _beat_sentry(**_kwargs) -> None:
    bootstrap.start_celery_sentry(app, "wheel-beat")


# Register the tasks (they import this package's bootstrap, so they come after the app).
import workers.health  # noqa: E402,F401  (its worker_ready timer)
import workers.tasks  # noqa: E402,F401
