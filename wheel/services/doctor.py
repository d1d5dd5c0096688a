"""`wheelctl doctor`'s checks that need only the core: Postgres and its schema, beat's last tick,
each enabled channel's secret and credentials, Slack and Sentry.

Every check gives `Check` rows: ok, warn or fail, and for what is not fine the exact fix (a
command, or the setting to change). Each runs under `within`, which gives up on it after a few
seconds, so one service that hangs cannot hang the doctor. The checks that need Celery or the OMS
transport, and the order they run in, are in workers/doctor.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg
import sentry_sdk.utils
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from wheel.db.migrate import alembic_config
from wheel.db.models import Channel
from wheel.marketplaces import adapter_for
from wheel.marketplaces.base import HttpConfig
from wheel.marketplaces.errors import AuthError, ConfigurationError, MarketplaceError, TransientError
from wheel.secrets import SecretNotFound, SecretStore
from wheel.services import health
from wheel.services.schedules import utcnow
from wheel.services.sync import channel_config

OK, WARN, FAIL = "ok", "warn", "fail"
# The longest any one check may take; a service that has not answered by then is reported as such.
CHECK_TIMEOUT_S = 5.0
# Timeouts of the calls inside a check, a little shorter, so that the check can say what failed.
CALL_TIMEOUT_S = 4.0
SLACK_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def within(name: str, run: Callable[[], list[Check]], timeout_s: float = CHECK_TIMEOUT_S, *,
           on_timeout: str = "") -> Callable[[], list[Check]]:
    """Start `run` on a daemon thread now; the returned callable waits for its rows, at most until
    `timeout_s` after the start. A check still running then is a failure that says so, with the fix
    `on_timeout` (its thread is left behind: it ends when its own call times out, or with the
    process). An exception the check did not expect is a failure too, its type and first line shown."""
    outcome: list = []

    def target() -> None:
        try:
            outcome.append(run())
        except Exception as exc:  # noqa: BLE001 - a check that breaks is reported, and the others go on
            outcome.append(exc)

    deadline = time.monotonic() + timeout_s
    thread = threading.Thread(target=target, name=f"doctor-{name}", daemon=True)
    thread.start()

    def wait() -> list[Check]:
        thread.join(max(0.0, deadline - time.monotonic()))
        if not outcome:
            return [Check(name, FAIL, f"no answer within {timeout_s:g} s", on_timeout)]
        if isinstance(outcome[0], Exception):
            return [Check(name, FAIL, f"{type(outcome[0]).__name__}: {first_line(outcome[0])}")]
        return outcome[0]

    return wait


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


# -- Postgres -----------------------------------------------------------------------------------


def postgres(database_url: str, how_to_start: str) -> list[Check]:
    """Reachable, with the database there."""
    url = make_url(database_url)
    where = url.render_as_string()  # the password shown as ***
    try:
        with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                             dbname=url.database, connect_timeout=int(CALL_TIMEOUT_S)):
            pass
    except psycopg.OperationalError as exc:
        message = first_line(exc)
        if "does not exist" in message and "database" in message:
            return [Check("Postgres", FAIL, f"{where}: {message}", "wheelctl migrate (creates the database and its schema)")]
        return [Check("Postgres", FAIL, f"{where} does not answer: {message}", how_to_start)]
    return [Check("Postgres", OK, f"{where} answers")]


def schema(database_url: str) -> list[Check]:
    """The database's Alembic revision against the head of the migrations in this Wheel."""
    scripts = ScriptDirectory.from_config(alembic_config(database_url))
    heads = set(scripts.get_heads())
    engine = create_engine(database_url, connect_args={"connect_timeout": int(CALL_TIMEOUT_S)}, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    if current == heads:
        return [Check("schema", OK, f"at the migrations' head ({', '.join(sorted(heads))})")]
    if not current:
        return [Check("schema", FAIL, "the database has no schema yet", "wheelctl migrate")]
    known = {rev.revision for rev in scripts.walk_revisions()}
    if current - known:
        return [Check("schema", FAIL, f"at revision {', '.join(sorted(current))}, which this Wheel's migrations do not "
                      "have: a newer Wheel migrated it", "run the Wheel version that migrated it, or upgrade this one")]
    return [Check("schema", FAIL, f"at revision {', '.join(sorted(current))}, behind the migrations' head "
                  f"{', '.join(sorted(heads))}", "wheelctl migrate")]


def beat(sessions, max_silence_s: float, start_command: str, now: datetime | None = None) -> list[Check]:
    """Beat writes a heartbeat row every tick (wheel/services/health.py)."""
    with sessions() as session:
        tick = health.heartbeat(session)
    if tick is None:
        return [Check("beat", FAIL, "beat has never ticked against this database", f"start beat: {start_command}")]
    age = ((now or utcnow()) - tick).total_seconds()
    if age > max_silence_s:
        return [Check("beat", FAIL, f"last tick {age:.0f} s ago (more than WHEEL_HEALTH_BEAT_MAX_SILENCE_S, "
                      f"{max_silence_s:g} s)", f"start beat: {start_command}")]
    return [Check("beat", OK, f"last tick {age:.0f} s ago")]


def enabled_channels(sessions) -> list[Channel]:
    with sessions() as session:
        return list(session.execute(select(Channel).where(Channel.enabled).order_by(Channel.id)).scalars())


# -- channels -----------------------------------------------------------------------------------


def channel_secret(channel: Channel, secrets: SecretStore) -> Check:
    name = f"secret {channel.credentials_ref}"
    try:
        secrets.get(channel.credentials_ref)
    except SecretNotFound as exc:
        return Check(name, FAIL, f"channel {channel.id}: {exc}",
                     f"set {secrets.env_name(channel.credentials_ref)}, or write the secret to "
                     f"{secrets.secrets_dir / channel.credentials_ref}")
    where = "environment" if secrets.environ.get(secrets.env_name(channel.credentials_ref)) else "file"
    return Check(name, OK, f"channel {channel.id}: found ({where})")


SECRET_SHAPES = {
    "amazon": '{"client_id", "client_secret", "refresh_token"} (Login with Amazon)',
    "flipkart": '{"app_id", "app_secret"}',
    "tatacliq": "the bearer token",
}


def channel_credentials(channel: Channel, secrets: SecretStore) -> list[Check]:
    """One cheap authenticated call with the channel's credentials (the adapter's check_credentials)."""
    name = f"channel {channel.id} ({channel.marketplace})"
    http = HttpConfig(CALL_TIMEOUT_S / 2, CALL_TIMEOUT_S / 2)
    env, path = secrets.env_name(channel.credentials_ref), secrets.secrets_dir / channel.credentials_ref
    try:
        said = adapter_for(channel_config(channel), http, secrets).check_credentials()
    except AuthError as exc:
        shape = SECRET_SHAPES.get(channel.marketplace, "the marketplace's credentials")
        return [Check(name, FAIL, f"credentials refused: {exc}",
                      f"put valid credentials, {shape}, in {env} or {path}")]
    except ConfigurationError as exc:
        return [Check(name, FAIL, str(exc), f"wheelctl channels set {channel.id} --base-url URL")]
    except TransientError as exc:
        if exc.status is not None:  # it answered, with a 429 or a 5xx: the marketplace's trouble, for now
            return [Check(name, FAIL, f"answered HTTP {exc.status}: {exc}",
                          f"the marketplace is failing or throttling; try again later, and see "
                          f"`wheelctl events --channel {channel.id} --level error`")]
        return [Check(name, FAIL, f"not reachable: {exc}", f"check the network and the channel's base URL "
                      f"({channel.base_url}); change it with wheelctl channels set {channel.id} --base-url URL")]
    except MarketplaceError as exc:  # CHANNEL_CONFIG: an option the adapter cannot use
        return [Check(name, FAIL, str(exc), f"wheelctl channels set {channel.id} --option KEY=VALUE")]
    return [Check(name, OK, said)]


# -- Slack and Sentry ---------------------------------------------------------------------------


def slack(token: str | None, webhook_url: str | None, *, base_url: str = SLACK_API_URL) -> list[Check]:
    """auth.test with the bot token (https://api.slack.com/methods/auth.test): it posts nothing. A
    webhook has no such call, and a post would reach the channel: it is only said to be set."""
    if token:
        client = WebClient(token=token, base_url=base_url, timeout=int(CALL_TIMEOUT_S), retry_handlers=[])
        try:
            answer = client.auth_test()
        except SlackApiError as exc:
            return [Check("Slack", FAIL, f"auth.test refused the bot token: {exc.response.get('error', '')}",
                          "set WHEEL_SLACK_TOKEN to a bot token (xoxb-...) of an app installed in the workspace")]
        except (SlackClientError, OSError) as exc:
            return [Check("Slack", FAIL, f"Slack could not be reached: {type(exc).__name__}",
                          f"check the network to {base_url}")]
        return [Check("Slack", OK, f"auth.test: bot {answer.get('user', '?')} in {answer.get('team', '?')}")]
    if webhook_url:
        return [Check("Slack", OK, "incoming webhook configured (not posted to)")]
    return [Check("Slack", OK, "not configured: alerts go to the log only (set WHEEL_SLACK_TOKEN to send them "
                  "to Slack)")]


def sentry(dsn: str | None) -> list[Check]:
    """The DSN parses (sentry-sdk's own parser); nothing is sent."""
    if not dsn:
        return [Check("Sentry", OK, "not configured (set WHEEL_SENTRY_DSN to report errors)")]
    try:
        parsed = sentry_sdk.utils.Dsn(dsn)
    except sentry_sdk.utils.BadDsn as exc:
        return [Check("Sentry", FAIL, f"WHEEL_SENTRY_DSN does not parse: {exc}",
                      "set WHEEL_SENTRY_DSN to the DSN from the Sentry project's Client Keys page")]
    return [Check("Sentry", OK, f"DSN for {parsed.host}, project {parsed.project_id}")]


def overall(checks: Sequence[Check]) -> str:
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else OK
