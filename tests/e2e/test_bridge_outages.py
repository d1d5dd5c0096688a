"""Postgres, then Redis, down for 30 s each while the OMS keeps sending and the broker stays up.

Real processes (bridge, worker, beat, sandbox) on a private Postgres and a private Redis, each on
its own port, which the test stops and starts; RabbitMQ is the shared one, with queues of this
test's own. 2,000 ranging messages arrive over the outages. Every message must be stored once
and processed once; the bridge must never hand a message back to the broker (on a quorum queue
each return counts against the delivery limit) nor reconnect to it, and must make one attempt
per backoff step.
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import datetime

import kombu
import pytest

from tests.e2e.test_ranging_e2e import doc, item
from tests.support.private import PrivatePostgres, PrivateRedis
from tests.support.processes import wait_for
from wheel.db import migrate

# About 2.5 minutes: two 20 s outages while 1,500 messages are sent over 55 s, then the backlog.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

MESSAGES = int(os.environ.get("WHEEL_TEST_OUTAGE_MESSAGES", "1500"))
OUTAGE_S = float(os.environ.get("WHEEL_TEST_OUTAGE_S", "20"))
RECONNECT_MAX_S = 8.0

ATTEMPT = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) WARNING wheel\.bridge: bridge: attempt failed \((?P<error>.*)\); "
    r".* in (?P<delay>[\d.]+)s \(attempt (?P<attempt>\d+), backoff step (?P<step>\d+)\)$",
    re.MULTILINE,
)


def failed_attempts(log: str) -> list[dict]:
    found = []
    for m in ATTEMPT.finditer(log):
        at = datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        found.append({"at": at, "error": m["error"], "delay": float(m["delay"]), "attempt": int(m["attempt"]),
                      "step": int(m["step"])})
    return found


def check_one_attempt_per_step(attempts: list[dict]) -> None:
    for before, after in zip(attempts, attempts[1:]):
        if after["attempt"] == 1:
            continue  # a new stall
        assert after["attempt"] == before["attempt"] + 1 and after["step"] == before["step"] + 1, (before, after)
        # The next attempt came after the whole wait it announced (nothing tried in between), and
        # was over soon after: no retry loop of its own inside an attempt.
        # The log prints the wait to a tenth of a second (0.254 s reads "0.3s"): allow for that.
        assert (before["delay"] - 0.05) * 0.95 - 0.01 <= after["at"] - before["at"] <= before["delay"] + 2.5, (before, after)


def queue_depth(url: str, queue: str) -> int:
    with kombu.Connection(url) as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


def test_postgres_then_redis_down_while_messages_arrive(stack_factory, tmp_path):
    postgres = PrivatePostgres().init()
    redis = PrivateRedis(tmp_path)
    stack = None
    try:
        postgres.start()
        database_url = postgres.url("wheel")
        migrate.ensure_database(database_url)
        migrate.upgrade(database_url)
        redis.start()
        stack = stack_factory(
            {"UA": {"marketplace": "tatacliq", "token": "token-UA"}},
            database_url=database_url, redis_url=redis.url(),
            sweeper_deadline_s=5, sweeper_interval_s=2, visibility_timeout_s=20, push_lease_s=15,
            bridge_batch_size=50, bridge_reconnect_max_s=RECONNECT_MAX_S,
        )
        stack.add_channel("UA", "token-UA", retry_delays_s=[0.5, 1, 2, 4, 8])
        stack.start_sandbox()
        worker = stack.add_worker(concurrency=2)
        stack.start_beat()
        stack.start_bridge()

        put_ids: list[str] = []

        def oms():  # about 25 messages a second, for the whole of both outages
            for n in range(MESSAGES):
                put_ids.append(stack.put("ranging", doc([item("UA", f"EAN-{n}", f"SKU-{n}")])))
                time.sleep(0.035)

        sender = threading.Thread(target=oms)
        sender.start()
        time.sleep(6)
        postgres.stop()
        postgres_down = time.time()
        time.sleep(OUTAGE_S)
        postgres.start()
        postgres_up = time.time()
        time.sleep(8)
        redis.stop()
        redis_down = time.time()
        time.sleep(OUTAGE_S)
        redis.start()
        redis_up = time.time()
        sender.join()
        assert len(put_ids) == MESSAGES

        restarts = []

        def all_pushed() -> bool:
            # Celery 5.7 with kombu 5.7 can stop a worker for good when Redis goes away ("Unrecoverable
            # error: AttributeError: 'NoneType' object has no attribute 'hostname'", while restoring its
            # unacknowledged tasks). A supervisor starts it again (docker-compose.yml: restart:
            # unless-stopped); so does this test, and says so. Nothing Wheel holds is lost either way.
            if not worker.alive():
                restarts.append(worker.output()[-2000:])
                print(f"worker stopped after the outage; started again ({len(restarts)})")
                stack.start_worker(worker)
            return stack.scalar("SELECT count(*) FROM events WHERE name = 'ranging/succeeded'") >= MESSAGES

        wait_for(all_pushed, 300, "every message to be processed and pushed", interval=1)
        assert len(restarts) <= 1, restarts
        time.sleep(3)  # anything that would double an outcome has had its chance

        # Every message stored once, and processed once.
        assert stack.scalar("SELECT count(*) FROM inbox") == MESSAGES
        assert stack.scalar("SELECT count(DISTINCT transport_message_id) FROM inbox "
                            "WHERE transport_message_id = ANY(:ids)", ids=put_ids) == MESSAGES
        assert stack.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'") == MESSAGES
        assert stack.scalar("SELECT count(*) FROM events WHERE type = 'oms'") == MESSAGES
        assert stack.scalar("SELECT count(*) FROM (SELECT inbox_id FROM events WHERE type = 'oms' "
                            "GROUP BY inbox_id HAVING count(*) <> 1) x") == 0
        assert stack.scalar("SELECT count(*) FROM events WHERE name = 'ranging/succeeded'") == MESSAGES
        # Nothing left on the queues, nothing dead-lettered or backed out.
        url = stack.settings.oms_url.get_secret_value()
        assert queue_depth(url, stack.settings.queue_ranging) == 0
        assert queue_depth(url, stack.settings.queue_backout) == 0

        # The bridge held its batch through both outages: no message went back to the broker
        # (a redelivery carries x-delivery-count), and it never reconnected to it.
        assert stack.scalar("SELECT count(*) FROM inbox WHERE headers ->> 'x-delivery-count' IS NOT NULL") == 0
        log = stack.bridge.output()
        assert log.count("connecting to the OMS broker") == 1, log[-3000:]
        assert stack.bridge.alive()

        # One attempt per backoff step, in each outage.
        attempts = failed_attempts(log)
        check_one_attempt_per_step(attempts)
        during_postgres = [a for a in attempts if postgres_down - 1 <= a["at"] <= postgres_up + 1]
        during_redis = [a for a in attempts if redis_down - 1 <= a["at"] <= redis_up + 1]
        assert during_postgres and during_redis and len(attempts) == len(during_postgres) + len(during_redis)
        # OUTAGE_S at 0.5, 1, 2, 4, then 8 s steps (each at least half its step).
        assert 3 <= len(during_postgres) <= 14 and 3 <= len(during_redis) <= 14, (during_postgres, during_redis)
        # Redis refused the connection (the first may instead be the cut of one open when it stopped).
        assert sum(str(redis.port) in a["error"] for a in during_redis) >= len(during_redis) - 1, during_redis

        # Said so: the Postgres stall once Postgres could take it, the Redis stall while it lasted.
        [resumed_pg, resumed_redis] = stack.events("system/bridge-resumed")
        assert resumed_pg.level == "warning" and resumed_pg.payload["stalled_s"] >= OUTAGE_S - 2
        [stalled] = stack.events("system/bridge-stalled")
        assert stalled.payload["where"] == "services" and str(redis.port) in stalled.payload["error"]
        assert resumed_redis.level == "info"
        print(f"\noutages: {len(during_postgres)} attempts while Postgres was down, {len(during_redis)} while "
              f"Redis was; bridge log has {log.count('attempt failed')} failed attempts")
    finally:
        if stack is not None:
            stack.stop()
        redis.stop()
        postgres.destroy()
