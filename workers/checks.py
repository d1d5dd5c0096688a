"""Does each local service answer? Said plainly, with the command that starts the one that does not."""

from __future__ import annotations

from dataclasses import dataclass

import kombu
import psycopg
import redis
from sqlalchemy.engine import make_url

from wheel.settings import Settings, redact_url

HOW_TO_START = {
    "Postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
    "RabbitMQ": "rabbitmq-server -detached",
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
