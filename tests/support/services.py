"""Test settings and clean state on the real local services (Postgres, Redis, RabbitMQ)."""

from __future__ import annotations

import os
import socket
import uuid

import kombu
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from wheel.db import migrate
from wheel.settings import Settings

# Under pytest-xdist (`make test` runs two workers), each worker gets a database and a Redis
# database of its own: gw0 the ones named here, gw1 `<name>_gw1` and the next Redis database.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _for_this_worker(database_url: str, redis_url: str) -> tuple[str, str]:
    index = int(XDIST_WORKER.removeprefix("gw") or 0)
    if index == 0:
        return database_url, redis_url
    database = make_url(database_url)
    redis_base, _, number = redis_url.rpartition("/")
    return (database.set(database=f"{database.database}_gw{index}").render_as_string(hide_password=False),
            f"{redis_base}/{int(number or 0) + index}")


TEST_DATABASE_URL, TEST_REDIS_URL = _for_this_worker(
    os.environ.get("WHEEL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/wheel_test"),
    # A Redis database of its own, so tests never touch what `make run` uses (database 0).
    os.environ.get("WHEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/9"),
)
TEST_AMQP_URL = os.environ.get("WHEEL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
TABLES = ("alerts", "health_alerts", "heartbeats", "events", "submissions", "listings", "inbox", "outbox", "cancellations",
          "orders", "job_runs", "schedules", "marketplace_lookups", "submission_timings", "channels",
          "operations_daily", "report_rollups")


def recreate_database(url: str) -> None:
    """Drop and create the test database, then build its schema by running the migrations."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    migrate.upgrade(url)


def truncate(engine) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique_queues() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        f"queue_{name}": f"TEST.{name.upper()}.{suffix}"
        for name in ("ranging", "deranging", "inventory", "pricing", "backout", "orders", "cancellations")
    }


def test_settings(**overrides) -> Settings:
    values = dict(
        database_url=TEST_DATABASE_URL,
        redis_url=TEST_REDIS_URL,
        oms_url=TEST_AMQP_URL,
        visibility_timeout_s=30,
        sweeper_deadline_s=5,
        sweeper_interval_s=2,
        push_lease_s=15,
        push_retry_delays_s=[0.2, 0.4, 0.8],
        # Well inside the short leases tests use: a call never outlives its claim.
        http_connect_timeout_s=2,
        http_read_timeout_s=3,
        # Health checks (beat's task, and a timer in every oms worker) would say, as errors, that
        # the stacks most tests start have no beat: tests that check health set their own interval.
        health_check_interval_s=3600,
        **unique_queues(),
    )
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The WHEEL_* environment that gives a subprocess these settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, list):
            import json

            value = json.dumps(value)
        env[f"WHEEL_{name.upper()}"] = str(value)
    return env


def flush_redis(url: str) -> None:
    redis.Redis.from_url(url).flushdb()


def delete_queues(url: str, names) -> None:
    with kombu.Connection(url) as connection:
        channel = connection.channel()
        for name in names:
            try:
                channel.queue_delete(name)
            except Exception:  # noqa: BLE001 - already gone, or never made
                channel = connection.channel()
