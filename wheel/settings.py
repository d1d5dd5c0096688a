"""One typed settings object, read from `WHEEL_*` environment variables in one place.

Entry points (the CLI, the bridge, the Celery app) build it once and pass it down; nothing
else reads the environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wheel import __version__
from wheel.domain import OPERATIONS
from wheel.timefmt import zone

# Secret settings shown with only their password masked; every other secret is masked whole.
MASKED_AS_URL = ("database_url", "redis_url", "oms_url")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHEEL_", extra="ignore")

    # Local services.
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/wheel"
    redis_url: str = "redis://127.0.0.1:6379/0"
    oms_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672//")

    # OMS queues, by operation. IBM MQ's developer queue manager has DEV.QUEUE.1..3 only, so the
    # defaults are names of our own; define them on the queue manager (see docker-compose.yml).
    queue_ranging: str = "OMS.RANGING"
    queue_deranging: str = "OMS.DERANGING"
    queue_inventory: str = "OMS.INVENTORY"
    queue_pricing: str = "OMS.PRICING"
    queue_backout: str = "OMS.BACKOUT"
    # Where Wheel puts orders and cancellations for the OMS.
    queue_orders: str = "OMS.ORDERS"
    queue_cancellations: str = "OMS.CANCELLATIONS"

    # Bridge.
    bridge_batch_size: int = Field(default=100, ge=1, le=5000)
    bridge_max_attempts: int = Field(default=5, ge=1, description="deliveries before backout")
    bridge_reconnect_max_s: float = Field(default=30.0, gt=0)
    # The bridge sends one task per this many messages of a batch: sending a task costs more than
    # most messages take to process, and a burst still spreads over several worker processes.
    process_chunk: int = Field(default=10, ge=1, description="messages per process_messages task")

    # OMS messages larger than this are stored but not parsed.
    max_message_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    # Celery on Redis. A task unacknowledged for this long is redelivered by Redis.
    visibility_timeout_s: int = Field(default=3600, ge=1)
    # A task is started at most this many times; a delivery past it (its worker process died every
    # time: killed, out of memory, crashed) is not run but recorded as system/task-abandoned.
    task_max_deliveries: int = Field(default=3, ge=1)
    # Work still pending this long after it was last touched is re-enqueued by the sweeper.
    sweeper_deadline_s: int = Field(default=300, ge=1)
    sweeper_interval_s: float = Field(default=60.0, gt=0)
    # A worker's claim on a push lasts this long; a worker killed mid-push frees it on expiry.
    push_lease_s: int = Field(default=120, ge=1)
    # Per-task attempts at a push that keeps failing transiently (default; channels override).
    push_retry_delays_s: list[float] = [5, 30, 120, 600]
    # An Amazon feed in flight is polled this long after it is submitted, then at twice the last
    # wait, up to the most (getFeed's quota is 2/s; a feed takes minutes).
    feed_first_poll_s: float = Field(default=15.0, gt=0)
    feed_max_poll_s: float = Field(default=120.0, gt=0)
    # What a push looks up on a marketplace (Flipkart's FSNs, location ids and listing status;
    # Amazon's product types) is kept in Postgres for every worker this long, then looked up again
    # (so a listing gone INACTIVE or a location added is seen); a refusal drops it sooner.
    lookup_ttl_s: float = Field(default=900.0, gt=0)

    # Order pulls. A channel's first pull looks back this far.
    orders_initial_lookback_s: int = Field(default=86400, ge=60)
    # Beat looks at the schedules this often; a run not started this long after it was sent is sent again.
    beat_tick_s: float = Field(default=1.0, gt=0)
    job_run_deadline_s: int = Field(default=300, ge=1)
    # A cancellation held this long for an order Wheel never received is expired, with an alert
    # (it still follows the order if the order turns up later).
    held_cancellation_max_age_s: int = Field(default=3 * 86400, ge=60)
    # Outbox rows the publisher puts (and commits) per batch.
    publish_batch_size: int = Field(default=200, ge=1, le=5000)

    # Health checks (wheel/services/health.py): run by beat and, so that a stopped beat is seen, by
    # every worker that consumes the oms queue. Each alert opens once and clears when its cause does.
    health_check_interval_s: float = Field(default=60.0, gt=0)
    # A pull job that has not succeeded for this many of its intervals.
    health_pull_missed_intervals: float = Field(default=3.0, gt=0)
    # A SKU whose desired state has not reached its marketplace for this long.
    health_unsynced_max_age_s: float = Field(default=1800.0, gt=0)
    # The oldest message waiting in an outbox (the OMS outbox) for this long.
    health_outbox_max_age_s: float = Field(default=300.0, gt=0)
    # Beat's last tick (a row it writes every tick) this long ago.
    health_beat_max_silence_s: float = Field(default=120.0, gt=0)
    # How long to wait for workers to say which queues they consume.
    health_inspect_timeout_s: float = Field(default=2.0, gt=0)

    # Retention (wheel/services/retention.py): the event log, the raw OMS messages (inbox), and the
    # customers' data of orders sent to the OMS (the marketplace's raw order, the addresses, the sent
    # documents) are purged this many days after they were made, by a task beat runs every
    # `retention_interval_s`, `retention_batch_size` rows a transaction. Rows still needed are kept.
    # The events are kept at least a week: a held cancellation's expiry (3 days) links to its event.
    retention_events_days: int = Field(default=90, ge=7)
    retention_inbox_days: int = Field(default=30, ge=1)
    retention_orders_days: int = Field(default=90, ge=1)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)
    retention_interval_s: float = Field(default=3600.0, gt=0)

    # Marketplace HTTP calls.
    http_connect_timeout_s: float = 5.0
    http_read_timeout_s: float = 30.0

    # Credentials: WHEEL_SECRET_<REF> in the environment, else a file <secrets_dir>/<ref>.
    secrets_dir: Path = Path("/run/secrets/wheel")

    # Logs: "text" (readable lines, the default) or "json" (one JSON object per line), in every process.
    log_format: Literal["text", "json"] = "text"
    # Times shown to a person (wheelctl tables, alerts), and the default zone of cron expressions.
    # Storage stays UTC.
    display_tz: str = "Asia/Kolkata"

    # Sandbox.
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 8900

    # Flower (`wheelctl flower`): where it listens, and the user:password it asks for (HTTP basic
    # auth; several pairs separated by commas). Without the setting, the secret `flower-basic-auth`
    # (env WHEEL_SECRET_FLOWER_BASIC_AUTH or <secrets_dir>/flower-basic-auth) is used; with neither,
    # Flower starts only on a loopback address.
    flower_address: str = "127.0.0.1"
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_basic_auth: SecretStr | None = None

    # Alerts (wheel/notifications.py). Slack through a bot token and channel (chat.postMessage) or an
    # incoming webhook; the token wins if both are set; with neither, alerts go to the log only.
    # Each secret is the variable, or else the secret `slack-token` / `slack-webhook-url` (the
    # environment variable WHEEL_SECRET_SLACK_TOKEN or the file <secrets_dir>/slack-token, as
    # channel secrets are read: wheel/secrets.py).
    slack_token: SecretStr | None = None
    slack_channel: str = "#wheel-alerts"
    slack_webhook_url: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_timeout_s: float = Field(default=10.0, gt=0)
    # Alerts of one event name and channel within this window make one message (the first goes at
    # once, the rest of the window in one message with their count and first event ids).
    alert_burst_window_s: float = Field(default=60.0, ge=0)
    alert_burst_ids: int = Field(default=5, ge=1)
    # The event's payload in a message is cut to this many characters.
    alert_payload_chars: int = Field(default=1500, ge=100, le=2800)
    # A post that failed is tried again after 5 s, doubling up to this.
    alert_retry_max_s: float = Field(default=300.0, gt=0)
    # Rows claimed for a post longer ago than this and still unsent (their worker was killed during
    # the post) are taken again by the next pass: well over slack_timeout_s, so a live post is never
    # doubled (wheel/services/alerts.py).
    alert_claim_timeout_s: float = Field(default=60.0, gt=0)
    sentry_dsn: SecretStr | None = None
    # Sentry's environment and release (https://docs.sentry.io/platforms/python/configuration/options/);
    # the release defaults to this package's version.
    sentry_environment: str = "production"
    sentry_release: str = Field(default_factory=lambda: f"wheel-middleware@{__version__}")
    # Beat checks in with Sentry Crons this often (monitor "wheel-beat"), when Sentry is configured.
    sentry_checkin_interval_s: float = Field(default=60.0, gt=0)

    @field_validator("display_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)  # ValueError for a name that is not a zone
        return value

    def queue_for(self, operation: str) -> str:
        return getattr(self, f"queue_{operation}")

    def operation_for_queue(self, queue: str) -> str | None:
        for operation in OPERATIONS:
            if self.queue_for(operation) == queue:
                return operation
        return None

    @property
    def oms_queues(self) -> dict[str, str]:
        return {operation: self.queue_for(operation) for operation in OPERATIONS}

    def redacted(self) -> dict[str, object]:
        """Settings safe to print: passwords in URLs are masked."""
        out: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                # A webhook's secret is its path, not a password: masked whole.
                value = redact_url(value.get_secret_value()) if name in MASKED_AS_URL else "***"
            elif isinstance(value, str) and name.endswith("_url"):
                value = redact_url(value)
            out[name] = value
        return out


def redact_url(url: str) -> str:
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
