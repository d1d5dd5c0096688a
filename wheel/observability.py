"""Error reporting to Sentry, when WHEEL_SENTRY_DSN is set; nothing otherwise.

Nothing that can hold a credential leaves for Sentry. Stack-frame local variables are not sent:
the Login with Amazon exchange holds the refresh token and client secret in a local dict, an
SP-API call the access token in its headers, Flipkart's token call the app secret, and Sentry's
default scrubber masks only top-level names from a fixed list. No request bodies or headers are
sent either (send_default_pii off), and the scrubber also runs through nested data with Wheel's
credential names added, for anything an integration attaches.

Every process reports with the logging and SQLAlchemy integrations (workers and beat add Celery's);
`server_name` is host, process and pid, so that scaled workers can be told apart. Beat checks in
with Sentry Crons (`BeatMonitor`): https://docs.sentry.io/platforms/python/crons/

sentry-sdk is imported only when a DSN is set (`init_sentry`): without one, no process carries
its modules (with slack-sdk, loaded only to post to Slack: about 4.5 MiB of each worker's memory).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
from collections.abc import Callable

from wheel.settings import Settings

# Key names whose values never reach Sentry (lower case), on top of sentry-sdk's DEFAULT_DENYLIST.
SECRET_KEYS = ("refresh_token", "client_secret", "client_id", "x-amz-access-token", "x_amz_access_token",
               "access_token", "app_secret", "app_id", "authorization", "basic", "password", "token", "secret",
               "secrets", "_secrets", "_known_secrets", "credentials", "_credentials", "_auth", "auth", "form",
               "database_url", "redis_url", "oms_url", "slack_token", "slack_webhook_url", "sentry_dsn", "dsn")


BEAT_MONITOR = "wheel-beat"


def server_name(component: str) -> str:
    return f"{socket.gethostname()}:{component}:{os.getpid()}"


def sentry_options(settings: Settings, *, component: str, integrations: list | None = None) -> dict:
    from sentry_sdk.integrations.logging import LoggingIntegration  # noqa: PLC0415 - loaded only with a DSN (module docstring)
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration  # noqa: PLC0415 - loaded only with a DSN (module docstring)
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber  # noqa: PLC0415 - loaded only with a DSN (module docstring)

    denylist = sorted({*DEFAULT_DENYLIST, *SECRET_KEYS})
    return dict(
        dsn=settings.sentry_dsn.get_secret_value(),
        # Log lines at INFO and above are breadcrumbs, ERROR lines are events (with the exception
        # of a log.exception); the SQL statements run are breadcrumbs (without their parameters).
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR), SqlalchemyIntegration(),
                      *(integrations or [])],
        environment=settings.sentry_environment,
        release=settings.sentry_release,
        send_default_pii=False,  # no request bodies, headers, cookies or user data
        include_local_variables=False,  # frames' locals hold tokens and secrets (see above)
        max_request_body_size="never",
        event_scrubber=EventScrubber(denylist=denylist, recursive=True),
        server_name=server_name(component),
    )


def init_sentry(settings: Settings, *, component: str, integrations: list | None = None) -> bool:
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk  # noqa: PLC0415 - loaded only with a DSN (module docstring)

    sentry_sdk.init(**sentry_options(settings, component=component, integrations=integrations))
    return True


class BeatMonitor:
    """Beat's check-ins with Sentry Crons: one "ok" on the first tick, then one every `interval_s`,
    with the monitor's schedule (an interval in minutes) so Sentry creates the monitor and says
    when the check-ins stop. Nothing when Sentry is not configured."""

    def __init__(self, interval_s: float, slug: str = BEAT_MONITOR, clock: Callable[[], float] = time.monotonic):
        self.interval_s, self.slug, self.clock = interval_s, slug, clock
        self._last: float | None = None

    def monitor_config(self) -> dict:
        minutes = max(1, math.ceil(self.interval_s / 60))
        return {"schedule": {"type": "interval", "value": minutes, "unit": "minute"},
                "checkin_margin": minutes, "max_runtime": 1}

    def tick(self) -> bool:
        """Check in if it is time; True when a check-in was sent."""
        if not sentry_active():
            return False
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        from sentry_sdk.crons import MonitorStatus, capture_checkin  # noqa: PLC0415 - loaded only with a DSN (module docstring)

        capture_checkin(monitor_slug=self.slug, status=MonitorStatus.OK, monitor_config=self.monitor_config())
        return True


def sentry_active() -> bool:
    """Sentry reports from this process: `init_sentry` ran with a DSN (and so imported sentry-sdk)."""
    return "sentry_sdk" in sys.modules and sys.modules["sentry_sdk"].get_client().is_active()
