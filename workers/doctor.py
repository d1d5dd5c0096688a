"""`wheelctl doctor`: is everything Wheel needs there and willing? Settings, Postgres and its schema,
Redis, the OMS transport and every queue, each enabled channel's credentials, Slack, Sentry,
beat, and a consumer for every worker queue.

The checks that need only the core are in wheel/services/doctor.py; those that need Celery, Redis
or the OMS transport are here, with the order they run in (`run`). They run in two rounds, the
checks of each round side by side, each given at most CHECK_TIMEOUT_S: the first round looks at
the services themselves, the second at what needs one of them (the schema, beat's tick and the
channels need Postgres; the workers are asked through Redis). Nothing is consumed or put: queues
are looked at passively (`Transport.exists`), Slack is asked auth.test, Sentry's DSN is parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import redis

from bridge.transports import Transport
from wheel.notifications import slack_secrets
from wheel.services import doctor
from wheel.services.doctor import FAIL, OK, WARN, Check, within
from wheel.settings import Settings, redact_url
from workers import bootstrap, queues
from workers.checks import HOW_TO_START, broker_name
from workers.flower import FlowerConfigError, flower_launch
from workers.health import celery_queues

BEAT_COMMAND = "celery -A workers.app beat --loglevel INFO"
WORKER_COMMAND = "celery -A workers.app worker -Q {queue} -n {name}@%h --loglevel INFO"
# Environment variables that start with WHEEL_ and are not settings, but still Wheel's.
OTHER_WHEEL_VARIABLES = ("WHEEL_SECRET_", "WHEEL_TEST_")


# -- settings -----------------------------------------------------------------------------------


def settings_checks(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    rows = [Check("settings", OK, "loaded from the environment")]
    known = {f"WHEEL_{name.upper()}" for name in Settings.model_fields}
    for variable in sorted(environ):
        if variable.startswith("WHEEL_") and variable not in known and not variable.startswith(OTHER_WHEEL_VARIABLES):
            rows.append(Check(f"setting {variable}", WARN, "not a setting Wheel has, so it is ignored (a typo?)",
                              f"unset {variable}, or rename it: `wheelctl settings` lists them all"))
    try:
        launch = flower_launch(settings, environ)
        rows.append(Check("Flower", OK, f"{launch.url()}, " + ("with a password" if launch.authenticated
                                                               else "loopback only, no password")))
    except FlowerConfigError as exc:
        rows.append(Check("Flower", FAIL, str(exc).split(":")[0],
                          "set WHEEL_FLOWER_BASIC_AUTH=user:password, or WHEEL_FLOWER_ADDRESS=127.0.0.1"))
    oms = urlsplit(settings.oms_url.get_secret_value())
    if oms.scheme.startswith("amqp") and (oms.username, oms.password) == ("guest", "guest") and \
            oms.hostname not in ("127.0.0.1", "localhost", "::1"):
        rows.append(Check("setting WHEEL_OMS_URL", WARN, f"{redact_url(oms.geturl())} uses RabbitMQ's guest user, "
                          "which RabbitMQ refuses from any host but localhost",
                          "set WHEEL_OMS_URL with a user of its own (rabbitmqctl add_user)"))
    return rows


# -- Redis, the OMS transport, the workers ------------------------------------------------------


def redis_check(settings: Settings) -> list[Check]:
    where = redact_url(settings.redis_url)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=doctor.CALL_TIMEOUT_S,
                                  socket_connect_timeout=doctor.CALL_TIMEOUT_S)
    try:
        client.ping()
    except redis.RedisError as exc:
        return [Check("Redis", FAIL, f"{where} does not answer: {exc}", HOW_TO_START["Redis"])]
    finally:
        client.close()
    return [Check("Redis", OK, f"{where} answers")]


def oms_queues(settings: Settings, transport: Transport | None = None) -> list[Check]:
    """The OMS transport connects, and each queue is there (asked passively). `transport`: the
    settings' own unless given (a test's IBM MQ over a stand-in of IBM's library)."""
    service = broker_name(settings)
    where = redact_url(settings.oms_url.get_secret_value())
    transport = transport or bootstrap.transport(settings)
    try:
        transport.connect()
    except Exception as exc:  # noqa: BLE001 - each transport has its own errors; none carries the password
        return [Check(f"OMS transport ({service})", FAIL, f"{where} does not answer: {doctor.first_line(exc)}",
                      HOW_TO_START[service])]
    ibmmq = service == "IBM MQ"
    rows = [Check(f"OMS transport ({service})", OK, f"{where} answers")]
    try:
        inbound = [*settings.oms_queues.values(), settings.queue_backout]
        for queue in [*inbound, settings.queue_orders, settings.queue_cancellations]:
            if transport.exists(queue):
                rows.append(Check(f"queue {queue}", OK, "exists"))
            elif ibmmq:
                rows.append(Check(f"queue {queue}", FAIL, "not defined on the queue manager",
                                  f"the MQ administrator defines it: DEFINE QLOCAL({queue}) (see deploy/ibmmq/20-wheel.mqsc)"))
            elif queue in inbound:
                # Until it exists the broker drops what the OMS sends to it (no queue takes it).
                rows.append(Check(f"queue {queue}", FAIL, "does not exist: the OMS's messages to it are dropped",
                                  "start the bridge, which declares it: wheelctl bridge"))
            else:
                rows.append(Check(f"queue {queue}", WARN, "does not exist yet: the publisher declares it at its "
                                  "first put", "start the publisher: " +
                                  WORKER_COMMAND.format(queue=queues.PUBLISHER_QUEUE, name="publisher")))
    finally:
        transport.close()
    return rows


def consumer_checks(settings: Settings, marketplaces_in_use: set[str] | None) -> list[Check]:
    """Every worker queue has a worker consuming it; a marketplace queue no enabled channel uses
    may go without. `marketplaces_in_use` None: not known (Postgres did not answer), all needed."""
    quick = settings.model_copy(update={"health_inspect_timeout_s": min(settings.health_inspect_timeout_s,
                                                                        doctor.CALL_TIMEOUT_S - 1)})
    stats = celery_queues(bootstrap.celery_app(quick), quick)
    if stats is None:
        return [Check("workers", FAIL, "could not ask the workers which queues they consume (Redis?)",
                      HOW_TO_START["Redis"])]
    rows = []
    for queue, stat in stats.items():
        waiting = f", {stat.depth} task(s) waiting" if stat.depth else ""
        if stat.consumers:
            rows.append(Check(f"worker queue {queue}", OK, f"{stat.consumers} consumer(s){waiting}"))
            continue
        marketplace = queue.removeprefix("marketplace.") if queue in queues.MARKETPLACE_QUEUES else None
        if marketplace and marketplaces_in_use is not None and marketplace not in marketplaces_in_use:
            rows.append(Check(f"worker queue {queue}", OK, f"no consumer, and no enabled {marketplace} channel"))
            continue
        rows.append(Check(f"worker queue {queue}", FAIL, f"no worker consumes it{waiting}",
                          "start one: " + WORKER_COMMAND.format(queue=queue, name=queue.split(".")[-1])))
    return rows


# -- the whole examination ----------------------------------------------------------------------


def run(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    secrets = bootstrap.secret_store(settings)
    broker = broker_name(settings)
    first: list[Callable[[], list[Check]]] = [
        within("settings", lambda: settings_checks(settings, environ)),
        within("Postgres", lambda: doctor.postgres(settings.database_url, HOW_TO_START["Postgres"]),
               on_timeout=f"check that Postgres runs ({HOW_TO_START['Postgres']}) and WHEEL_DATABASE_URL"),
        within("Redis", lambda: redis_check(settings),
               on_timeout=f"check that Redis runs ({HOW_TO_START['Redis']}) and WHEEL_REDIS_URL"),
        within("OMS transport", lambda: oms_queues(settings),
               on_timeout=f"check that {broker} runs ({HOW_TO_START[broker]}) and WHEEL_OMS_URL"),
        within("Slack", lambda: doctor.slack(*slack_secrets(settings, bootstrap.secret_store(settings)),
                                             base_url=settings.slack_api_url),
               on_timeout="check the network to slack.com"),
        within("Sentry", lambda: doctor.sentry(_secret(settings.sentry_dsn))),
    ]
    rows = [row for wait in first for row in wait()]
    postgres_ok = any(r.name == "Postgres" and r.status == OK for r in rows)
    redis_ok = any(r.name == "Redis" and r.status == OK for r in rows)

    second: list[Callable[[], list[Check]]] = []
    channels = None
    if postgres_ok:
        sessions = bootstrap.sessions(settings, "wheelctl-doctor", pool_size=2)
        second.append(within("schema", lambda: doctor.schema(settings.database_url), on_timeout="wheelctl migrate --check"))
        second.append(within("beat", lambda: doctor.beat(sessions, settings.health_beat_max_silence_s, BEAT_COMMAND),
                             on_timeout="wheelctl status (Postgres is slow to answer)"))
        found: list = []

        def list_channels() -> list[Check]:
            found.extend(doctor.enabled_channels(sessions))
            return [] if found else [Check("channels", WARN, "no enabled channel", "wheelctl channels add --help")]

        listed = within("channels", list_channels, on_timeout="wheelctl channels list (Postgres is slow to answer)")()
        rows += listed
        channels = None if any(r.status == FAIL for r in listed) else list(found)
    else:
        rows.append(Check("schema, beat, channels", WARN, "not checked: they are read from Postgres, which does not "
                          "answer", HOW_TO_START["Postgres"]))
    for channel in channels or []:
        secret = doctor.channel_secret(channel, secrets)
        rows.append(secret)
        if secret.status == OK:
            second.append(within(f"channel {channel.id} ({channel.marketplace})",
                                 lambda c=channel: doctor.channel_credentials(c, secrets),
                                 on_timeout=f"check the network and the channel's base URL ({channel.base_url})"))
    if redis_ok:
        in_use = {c.marketplace for c in channels} if channels is not None else None
        second.append(within("workers", lambda: consumer_checks(settings, in_use),
                             on_timeout="wheelctl status (shows the queues and their consumers)"))
    else:
        rows.append(Check("workers", FAIL, "not asked: they answer through Redis, which does not", HOW_TO_START["Redis"]))
    rows += [row for wait in second for row in wait()]
    return rows


def _secret(value) -> str | None:
    return value.get_secret_value().strip() or None if value is not None else None

