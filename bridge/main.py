"""Wiring and running the bridge process: settings in, transport, database and Celery app built."""

from __future__ import annotations

import logging
import signal
import threading

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

from bridge.service import Bridge, BridgeStats
from bridge.transports import transport_for_settings
from wheel.db import make_engine, make_sessionmaker
from wheel.observability import init_sentry
from wheel.settings import Settings

log = logging.getLogger("wheel.bridge")

# Services going away, to come back: a stall made of these is worth an event only once it has
# lasted a while. (The bridge retries every error; it never exits on one.)
RECOVERABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def build_bridge(settings: Settings, stop: threading.Event, *, accept_existing_queues: bool = False) -> Bridge:
    from workers.app import create_app
    from workers.dispatch import Dispatcher

    app = create_app(settings)
    # One attempt per send, one connection attempt per send: the bridge retries a batch itself,
    # with its own backoff. Left alone, Celery retries a publish, and kombu retries connecting to
    # Redis for up to broker_connection_timeout (three connections in about 6 s, seen here).
    app.conf.task_publish_retry = False
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "max_retries": 0}
    dispatch = Dispatcher(app)
    transport = transport_for_settings(settings, consumer=True, accept_existing_queues=accept_existing_queues,
                                       prefetch=settings.bridge_batch_size * 2)
    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=2, application_name="wheel-bridge"))
    return Bridge(
        transport,
        queues=list(settings.oms_queues.values()),
        backout_queue=settings.queue_backout,
        sessions=sessions,
        send_process=dispatch.process_messages,
        send_alert=dispatch.alert,
        recoverable=RECOVERABLE,
        batch_size=settings.bridge_batch_size,
        max_attempts=settings.bridge_max_attempts,
        reconnect_max_s=settings.bridge_reconnect_max_s,
        stop=stop,
    )


def run_bridge(settings: Settings, *, accept_existing_queues: bool = False) -> BridgeStats:
    init_sentry(settings, component="wheel-bridge")
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("bridge got %s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return build_bridge(settings, stop, accept_existing_queues=accept_existing_queues).run()
