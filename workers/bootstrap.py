"""The composition root: every collaborator Wheel's processes use, built from settings, here only.

Four kinds of process start from this module, and none builds anything of its own. Each sets up
its logs and error reports here first (`start_process`, and for Celery's processes the signals in
workers/app.py):
- a Celery worker: `celery_app` (via workers/app.py), then `container` once per process (after
  the prefork pool forks, never at import time) for the database, Redis, adapters and alerts;
- beat: `sessions` for the schedules in Postgres, and a `Dispatcher` on its app;
- the bridge: `build_bridge`, which hands the consume loop (bridge/consumer.py) a transport, a
  database and a way to send tasks, so that bridge/ never imports Celery;
- `wheelctl` (workers/cli/): `sessions`, `dispatcher`, `channel_adapter`, `transport`.

See docs/architecture.md for the packages and the arrows between them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from functools import cached_property

import celery.apps.worker as celery_worker
import kombu.exceptions
import redis
import redis.exceptions
import sqlalchemy.exc
from celery import Celery, current_task
from kombu import Queue
from sqlalchemy.orm import Session, sessionmaker

from bridge.consumer import Bridge, BridgeStats
from bridge.transports import Transport, transport_for_settings, transport_from_url
from bridge.transports.base import Outgoing
from wheel.db import make_engine, make_sessionmaker
from wheel.db.models import Channel
from wheel.logs import ContextProvider, configure_logging
from wheel.marketplaces import adapter_for
from wheel.marketplaces.base import ChannelConfig, HttpConfig, MarketplaceAdapter, QuotaGate
from wheel.marketplaces.lookups import LookupCache
from wheel.notifications import Sender, sender_from_settings
from wheel.observability import init_sentry
from wheel.quota import RedisQuotaGate, effective_quotas
from wheel.secrets import SecretStore
from wheel.services.alerts import DeliveryOptions
from wheel.services.lookup_cache import PostgresLookupCache
from wheel.services.outbox import Outlet
from wheel.services.sync import channel_config
from wheel.settings import Settings
from workers import queues
from workers.dispatch import Dispatcher

log = logging.getLogger("wheel.bridge")

ADAPTER_TTL_S = 300
# The publisher reconnects to the OMS broker after this long without a put (heartbeats are 30 s).
TRANSPORT_IDLE_S = 20
REDIS_TIMEOUT_S = 10

# Services going away, to come back: a bridge stall made of these is worth an event only once it
# has lasted a while. (The bridge retries every error; it never exits on one.)
RECOVERABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


# -- logs and error reports ------------------------------------------------------------------------


def start_process(settings: Settings, process: str, *, level: str | int = "INFO", integrations: list | None = None,
                  providers: tuple[ContextProvider, ...] = ()) -> None:
    """Logging (wheel/logs.py) and Sentry (wheel/observability.py) for a process named `process`."""
    configure_logging(settings, process=process, level=level, providers=providers)
    init_sentry(settings, component=process, integrations=integrations)


def celery_process(argv: list[str]) -> str:
    """The name a Celery process logs and reports under: `celery -A workers.app beat` is wheel-beat."""
    for command in ("worker", "beat", "flower"):
        if command in argv[1:]:
            return f"wheel-{command}"
    return "wheel-celery"


def celery_task_context() -> dict[str, object]:
    """The task Celery is running in this process, for Celery's own lines about it ("Task ...
    succeeded"), written outside the task's own log context."""
    task = current_task
    if not task or task.request.id is None:
        return {}
    return {"task_id": task.request.id, "task_name": task.name}


def start_celery_logging(app: Celery, process: str, level: str | int = "INFO") -> None:
    configure_logging(app.wheel_settings, process=process, level=level, providers=(celery_task_context,))


def start_celery_sentry(app: Celery, process: str) -> None:
    if app.wheel_settings.sentry_dsn is None:
        return  # sentry-sdk stays unimported (wheel/observability.py)
    from sentry_sdk.integrations.celery import CeleryIntegration  # noqa: PLC0415 - loaded only with a DSN (wheel/observability.py)

    # Beat's check-ins are Wheel's own (wheel/observability.py BeatMonitor), not one per task sent.
    init_sentry(app.wheel_settings, component=process,
                integrations=[CeleryIntegration(monitor_beat_tasks=False)])


def _no_plain_text(app: Celery) -> None:
    """With JSON logs every line a process writes must be JSON, but Celery's worker and beat print
    a banner as plain text, and the worker a line when it shuts down: these classes print neither
    (as `celery -q` would, from the command line). The worker's banner and its shutdown are logged
    instead (workers/app.py)."""

    class Worker(app.Worker):
        def on_before_init(self, quiet=False, **kwargs):
            super().on_before_init(quiet=True, **kwargs)

        def install_platform_tweaks(self, worker):
            super().install_platform_tweaks(worker)
            # The same SIGTERM and SIGQUIT handlers, without their line on standard output.
            celery_worker.install_worker_term_handler(worker, verbose=False)
            celery_worker.install_worker_term_hard_handler(worker, verbose=False)

    class Beat(app.Beat):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.quiet = True

    app.Worker, app.Beat = Worker, Beat


# -- shared parts -------------------------------------------------------------------------------


def sessions(settings: Settings, application_name: str, *, pool_size: int | None = None) -> sessionmaker[Session]:
    """Sessions on the database; `application_name` tells the processes apart in pg_stat_activity."""
    options = {"pool_size": pool_size} if pool_size is not None else {}
    return make_sessionmaker(make_engine(settings.database_url, application_name=application_name, **options))


def http_config(settings: Settings) -> HttpConfig:
    return HttpConfig(settings.http_connect_timeout_s, settings.http_read_timeout_s)


def secret_store(settings: Settings) -> SecretStore:
    return SecretStore(os.environ, settings.secrets_dir)


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=REDIS_TIMEOUT_S,
                                socket_connect_timeout=REDIS_TIMEOUT_S)


def quota_gate(client: redis.Redis, channel: Channel, adapter: MarketplaceAdapter) -> QuotaGate:
    quotas = effective_quotas(adapter.capabilities.quotas, channel.quota_scale, channel.quotas)
    return RedisQuotaGate(client, channel.id, quotas)


def transport(settings: Settings, **options) -> Transport:
    """The OMS transport, for a put or a tail from the command line."""
    return transport_for_settings(settings, **options)


# -- the Celery app -----------------------------------------------------------------------------


def celery_app(settings: Settings) -> Celery:
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
        # Schedules live in Postgres (workers/beat.py); the sweeper, the health checks and the retention
        # purge stay static entries.
        beat_scheduler="workers.beat:DatabaseScheduler",
        beat_schedule={
            "sweep": {"task": queues.SWEEP, "schedule": settings.sweeper_interval_s},
            # Workers consuming the oms queue run it too, so a stopped beat is noticed (workers/health.py).
            "health": {"task": queues.HEALTH, "schedule": settings.health_check_interval_s},
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
    if settings.log_format == "json":
        _no_plain_text(app)
    return app


def dispatcher(app: Celery) -> Dispatcher:
    return Dispatcher(app, chunk=app.wheel_settings.process_chunk)


# -- a worker process ---------------------------------------------------------------------------


class Container:
    """What a worker process's tasks use, each part built on first use and kept for the process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pid = os.getpid()
        self._adapters: dict[ChannelConfig, tuple[float, MarketplaceAdapter]] = {}
        self._lock = threading.Lock()
        self._transport: Transport | None = None
        self._transport_used = 0.0

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return sessions(self.settings, "wheel-worker")

    @cached_property
    def secrets(self) -> SecretStore:
        return secret_store(self.settings)

    @cached_property
    def http(self) -> HttpConfig:
        return http_config(self.settings)

    @cached_property
    def alert_sender(self) -> Sender:
        return sender_from_settings(self.settings, self.secrets)

    @cached_property
    def alert_options(self) -> DeliveryOptions:
        s = self.settings
        return DeliveryOptions(window_s=s.alert_burst_window_s, first_ids=s.alert_burst_ids,
                               payload_chars=s.alert_payload_chars, retry_max_s=s.alert_retry_max_s,
                               claim_timeout_s=s.alert_claim_timeout_s)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.settings)

    @cached_property
    def lookups(self) -> LookupCache:
        """What adapters look up (FSNs, product types), shared by every worker through Postgres."""
        return PostgresLookupCache(self.sessions, self.settings.lookup_ttl_s)

    def quota_gate(self, channel: Channel, adapter: MarketplaceAdapter) -> QuotaGate:
        return quota_gate(self.redis, channel, adapter)

    def order_source(self, channel: Channel) -> tuple[MarketplaceAdapter, QuotaGate]:
        """The channel's adapter as an order source, and its quota gate."""
        adapter = self.adapter(channel_config(channel))
        return adapter, self.quota_gate(channel, adapter)

    @property
    def outlet(self) -> Outlet:
        """The OMS transport the publisher puts on: one connection per process, reopened after a failure."""
        if self._transport is not None and time.monotonic() - self._transport_used > TRANSPORT_IDLE_S:
            # Idle connections miss their heartbeats and the broker drops them: start afresh
            # rather than fail the first put after a quiet spell.
            self.drop_transport()
        if self._transport is None:
            opened = transport_from_url(self.settings.oms_url.get_secret_value())
            opened.connect()
            opened.declare([self.settings.queue_orders, self.settings.queue_cancellations])
            self._transport = opened
        current = self._transport
        self._transport_used = time.monotonic()
        return Outlet(put=current.put, commit=lambda: current.commit([]),
                      put_many=lambda batch: current.put_many(
                          [Outgoing(m.queue, m.body, m.message_id, m.headers) for m in batch]))

    def drop_transport(self) -> None:
        current, self._transport = self._transport, None
        if current is not None:
            try:
                current.close()
            except Exception:  # noqa: BLE001 - it is broken already; a new one is made next time
                pass

    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def adapter(self, channel: ChannelConfig) -> MarketplaceAdapter:
        """One adapter (and HTTP session, and token) per channel config, refreshed now and then."""
        now = time.monotonic()
        with self._lock:
            cached = self._adapters.get(channel)
            if cached is not None and now - cached[0] < ADAPTER_TTL_S:
                return cached[1]
        adapter = adapter_for(channel, self.http, self.secrets, self.lookups)
        with self._lock:
            self._adapters[channel] = (now, adapter)
        return adapter


_container: Container | None = None


def container(settings: Settings) -> Container:
    """The worker process's container (a new one in a forked child)."""
    global _container
    if _container is None or _container.pid != os.getpid():
        _container = Container(settings)
    return _container


# -- wheelctl -----------------------------------------------------------------------------------


def channel_adapter(settings: Settings, channel: Channel) -> tuple[MarketplaceAdapter, QuotaGate]:
    """A channel's adapter and quota gate for a command run by hand (`wheelctl resync`): it shares
    the workers' quota buckets in Redis, so together they stay within the marketplace's quota."""
    lookups = PostgresLookupCache(sessions(settings, "wheelctl", pool_size=1), settings.lookup_ttl_s)
    adapter = adapter_for(channel_config(channel), http_config(settings), secret_store(settings), lookups)
    return adapter, quota_gate(redis_client(settings), channel, adapter)


# -- the bridge process -------------------------------------------------------------------------


def build_bridge(settings: Settings, stop: threading.Event, *, accept_existing_queues: bool = False) -> Bridge:
    app = celery_app(settings)
    # One attempt per send, one connection attempt per send: the bridge retries a batch itself,
    # with its own backoff. Left alone, Celery retries a publish, and kombu retries connecting to
    # Redis for up to broker_connection_timeout (three connections in about 6 s, seen here).
    app.conf.task_publish_retry = False
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "max_retries": 0}
    dispatch = dispatcher(app)
    consumer_transport = transport_for_settings(settings, consumer=True, accept_existing_queues=accept_existing_queues,
                                                prefetch=settings.bridge_batch_size * 2)
    return Bridge(
        consumer_transport,
        queues=list(settings.oms_queues.values()),
        backout_queue=settings.queue_backout,
        sessions=sessions(settings, "wheel-bridge", pool_size=2),
        send_process=dispatch.process_messages,
        send_alert=dispatch.alert,
        recoverable=RECOVERABLE,
        batch_size=settings.bridge_batch_size,
        max_attempts=settings.bridge_max_attempts,
        reconnect_max_s=settings.bridge_reconnect_max_s,
        stop=stop,
    )


def run_bridge(settings: Settings, *, accept_existing_queues: bool = False) -> BridgeStats:
    """The bridge process: consume until SIGTERM or Ctrl-C, finishing the batch in hand."""
    start_process(settings, "wheel-bridge", level=logging.getLogger().level or logging.INFO)
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("bridge got %s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return build_bridge(settings, stop, accept_existing_queues=accept_existing_queues).run()
