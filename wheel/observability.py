"""Error reporting to Sentry, when WHEEL_SENTRY_DSN is set; nothing otherwise.

Nothing that can hold a credential leaves for Sentry. Stack-frame local variables are not sent:
the Login with Amazon exchange holds the refresh token and client secret in a local dict, an
SP-API call the access token in its headers, Flipkart's token call the app secret, and Sentry's
default scrubber masks only top-level names from a fixed list. No request bodies or headers are
sent either (send_default_pii off), and the scrubber also runs through nested data with Wheel's
credential names added, for anything an integration attaches.
"""

from __future__ import annotations

import sentry_sdk
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

from wheel.settings import Settings

# Key names whose values never reach Sentry (lower case), on top of sentry-sdk's DEFAULT_DENYLIST.
SECRET_KEYS = ("refresh_token", "client_secret", "client_id", "x-amz-access-token", "x_amz_access_token",
               "access_token", "app_secret", "app_id", "authorization", "basic", "password", "token", "secret",
               "secrets", "_secrets", "_known_secrets", "credentials", "_credentials", "_auth", "auth", "form",
               "database_url", "redis_url", "oms_url", "slack_token", "slack_webhook_url", "sentry_dsn", "dsn")


def sentry_options(settings: Settings, *, component: str, integrations: list | None = None) -> dict:
    denylist = sorted({*DEFAULT_DENYLIST, *SECRET_KEYS})
    return dict(
        dsn=settings.sentry_dsn.get_secret_value(),
        integrations=integrations or [],
        send_default_pii=False,  # no request bodies, headers, cookies or user data
        include_local_variables=False,  # frames' locals hold tokens and secrets (see above)
        max_request_body_size="never",
        event_scrubber=EventScrubber(denylist=denylist, recursive=True),
        server_name=component,
    )


def init_sentry(settings: Settings, *, component: str, integrations: list | None = None) -> bool:
    if settings.sentry_dsn is None:
        return False
    sentry_sdk.init(**sentry_options(settings, component=component, integrations=integrations))
    return True
