"""Error reporting to Sentry, when WHEEL_SENTRY_DSN is set; nothing otherwise."""

from __future__ import annotations

from wheel.settings import Settings


def init_sentry(settings: Settings, *, component: str, integrations: list | None = None) -> bool:
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        integrations=integrations or [],
        send_default_pii=False,  # no request bodies, headers or credentials
        server_name=component,
    )
    return True
