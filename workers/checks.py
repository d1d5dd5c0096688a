"""Does each local service answer? Said plainly, with the command that starts the one that does not.

`service_down` is the same for `wheelctl`: an error a command met because Postgres, Redis or the OMS
broker did not answer becomes one line naming the service, where it was looked for and how to
start it (workers/cli/__init__.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import kombu
import kombu.exceptions
import psycopg
import redis
import redis.exceptions
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from wheel.settings import Settings, redact_url

HOW_TO_START = {
    "Postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
    "RabbitMQ": "rabbitmq-server -detached",
    # The queue manager's own command is strmqm (https://www.ibm.com/docs/en/ibm-mq/9.4?topic=reference-strmqm-start-queue-manager).
    "IBM MQ": "docker compose up -d ibmmq (or strmqm QMGR on the queue manager's host)",
}


@dataclass(frozen=True)
class Check:
    service: str
    where: str
    ok: bool
    detail: str

    def line(self) -> str:
        if self.ok:
            return f"ok    {self.service:<9} {self.where}"
        hint = HOW_TO_START.get(self.service, "")
        return f"FAIL  {self.service:<9} {self.where} does not answer: {self.detail}\n      start it with: {hint}"


def check_services(settings: Settings) -> list[Check]:
    results = []
    url = make_url(settings.database_url)
    where = f"{url.host}:{url.port or 5432}"
    try:
        with psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, password=url.password,
            dbname="postgres", connect_timeout=3,
        ):
            results.append(Check("Postgres", where, True, ""))
    except psycopg.Error as exc:
        results.append(Check("Postgres", where, False, str(exc).strip().splitlines()[0]))
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
        results.append(Check("Redis", redact_url(settings.redis_url), True, ""))
    except redis.RedisError as exc:
        results.append(Check("Redis", redact_url(settings.redis_url), False, str(exc)))
    oms_url = settings.oms_url.get_secret_value()
    if oms_url.startswith("amqp"):
        connection = kombu.Connection(oms_url, connect_timeout=3)
        try:
            connection.ensure_connection(max_retries=1)
            results.append(Check("RabbitMQ", connection.as_uri(), True, ""))
        except Exception as exc:  # noqa: BLE001 - any failure means "does not answer"
            results.append(Check("RabbitMQ", connection.as_uri(), False, f"{type(exc).__name__}: {exc}"))
        finally:
            connection.release()
    return results


def broker_name(settings: Settings) -> str:
    """The OMS broker's product, from its URL's scheme (bridge/transports/__init__.py)."""
    return "IBM MQ" if urlsplit(settings.oms_url.get_secret_value()).scheme == "ibmmq" else "RabbitMQ"


POSTGRES_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, psycopg.OperationalError,
                   psycopg.InterfaceError)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# Celery sends tasks through kombu, whose connection errors (Redis, here) are this.
KOMBU_ERRORS = (kombu.exceptions.OperationalError,)


def service_down(exc: BaseException, settings: Settings, transport_errors: tuple[type[BaseException], ...] = ()) -> str | None:
    """One line for an error that means a service did not answer; None for any other error.

    The OMS broker's errors are those the transport raised (a frame of bridge/transports/ in the
    traceback), whether kombu's or the transport's own `connection_errors`; kombu's elsewhere are
    Celery's broker, Redis. A Postgres error counts only when it is about the connection (no
    SQLSTATE, or class 08, 57P, 3D000 or 28): a query's error is not a service being down.
    """
    seen = 0
    while exc is not None and seen < 10:  # the error, then what it was raised from or while handling
        line = _service_down(exc, settings, transport_errors)
        if line is not None:
            return line
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _service_down(exc: BaseException, settings: Settings, transport_errors: tuple[type[BaseException], ...]) -> str | None:
    if _raised_in(exc.__traceback__, "bridge.transports") and isinstance(exc, (*KOMBU_ERRORS, *transport_errors)):
        service = broker_name(settings)
        return _line(service, redact_url(settings.oms_url.get_secret_value()), exc)
    if isinstance(exc, POSTGRES_ERRORS):
        origin = getattr(exc, "orig", None) or exc
        state = getattr(origin, "sqlstate", None) or ""
        where = make_url(settings.database_url).render_as_string()  # the password as ***
        message = _first_line(origin)
        # A failed connection carries no SQLSTATE (libpq's message says what happened).
        if state == "3D000" or (not state and re.search(r'database ".*" does not exist', message)):
            return f"Postgres at {where}: {_first_line(origin)}; create it with: wheelctl migrate"
        if state.startswith("28") or (not state and "authentication failed" in message):
            return f"Postgres at {where} refused the login: {_first_line(origin)}; check WHEEL_DATABASE_URL"
        if not state or state.startswith(("08", "57P")):
            return _line("Postgres", where, origin)
        return None
    if isinstance(exc, (*REDIS_ERRORS, *KOMBU_ERRORS)):
        return _line("Redis", redact_url(settings.redis_url), exc)
    return None


def _line(service: str, where: str, exc: BaseException) -> str:
    return f"{service} at {where} does not answer ({_first_line(exc)}); start it with: {HOW_TO_START[service]}"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _raised_in(tb: TracebackType | None, package: str) -> bool:
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(package):
            return True
        tb = tb.tb_next
    return False
