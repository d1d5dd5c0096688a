"""The Celery app, configured from settings. `celery -A workers.app worker -Q ...` runs it.

Its configuration is built in workers/bootstrap.py, with every other collaborator.
"""

from __future__ import annotations

from celery import signals
from sentry_sdk.integrations.celery import CeleryIntegration

from wheel.observability import init_sentry
from wheel.settings import Settings
from workers.bootstrap import celery_app

app = celery_app(Settings())


@signals.worker_init.connect
def _init_sentry(**_kwargs) -> None:
    init_sentry(app.wheel_settings, component="wheel-worker", integrations=[CeleryIntegration()])


# Register the tasks (they import this package's bootstrap, so they come after the app).
import workers.health  # noqa: E402,F401  (its worker_ready timer)
import workers.tasks  # noqa: E402,F401
