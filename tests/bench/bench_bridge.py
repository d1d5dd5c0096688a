"""Bridge throughput: OMS queue to enqueued Celery task, against a naive loop on the same services.

The naive loop is what one would write first: get one message, `apply_async` its task, ack it;
no inbox, no durability. The bridge stores every message in Postgres (one transaction per batch),
sends its task, and only then acks. Both run here, one after the other, on the same RabbitMQ,
Redis and Postgres, with the same number of messages, pre-loaded on their queues.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import kombu
import redis
from sqlalchemy import text

from bridge.transports import transport_for_settings
from tests.support import services
from wheel.db import make_engine
from workers.bootstrap import build_bridge, celery_app

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "5000"))
OUT = Path("build/bench/bridge.json")
BODY = (Path(__file__).resolve().parents[1] / "samples" / "ranging.xml").read_bytes()


def preload(settings, queue: str, count: int) -> None:
    transport = transport_for_settings(settings)  # the OMS queues as the bridge declares them
    transport.connect()
    try:
        for n in range(count):
            transport.put(queue, BODY, message_id=f"bench-{queue}-{n}")
    finally:
        transport.close()


def naive(settings, queue: str, count: int) -> float:
    app = celery_app(settings)
    with kombu.Connection(settings.oms_url.get_secret_value()) as connection:
        bound = kombu.Queue(queue, exchange="", routing_key=queue)(connection.default_channel)
        started = time.perf_counter()
        done = 0
        while done < count:
            message = bound.get(no_ack=False)  # basic.get: one message
            if message is None:
                continue
            app.send_task("wheel.oms.process_message", args=[0], queue="oms")
            message.ack()
            done += 1
        elapsed = time.perf_counter() - started
    return elapsed


def bridge(settings, count: int, engine) -> float:
    stop = threading.Event()
    service = build_bridge(settings, stop)
    thread = threading.Thread(target=service.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    while service.stats.messages < count:
        time.sleep(0.005)
        if not thread.is_alive():
            raise RuntimeError("the bridge stopped early")
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join(10)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM inbox")).scalar()
    assert stored == count, f"the bridge stored {stored} of {count}"
    return elapsed


def main() -> None:
    database_url = services.TEST_DATABASE_URL.rsplit("/", 1)[0] + "/wheel_bench"
    services.recreate_database(database_url)
    settings = services.test_settings(database_url=database_url, redis_url="redis://127.0.0.1:6379/10")
    engine = make_engine(database_url)
    queues = [*settings.oms_queues.values(), settings.queue_backout]
    naive_queue = settings.queue_ranging + ".NAIVE"
    try:
        redis.Redis.from_url(settings.redis_url).flushdb()
        print(f"bridge benchmark: {MESSAGES} messages each, pre-loaded on RabbitMQ (quorum queues)")
        preload(settings, naive_queue, MESSAGES)
        preload(settings, settings.queue_ranging, MESSAGES)
        # The bridge's own connection: it consumes from the four OMS queues.
        naive_s = naive(settings, naive_queue, MESSAGES)
        redis.Redis.from_url(settings.redis_url).flushdb()
        bridge_s = bridge(settings, MESSAGES, engine)
        tasks = redis.Redis.from_url(settings.redis_url).llen("oms")
        assert tasks == MESSAGES, f"{tasks} tasks enqueued for {MESSAGES} messages"
    finally:
        services.delete_queues(services.TEST_AMQP_URL, [*queues, naive_queue])
        redis.Redis.from_url(settings.redis_url).flushdb()
        engine.dispose()
    result = {
        "bridge_msgs_per_s": round(MESSAGES / bridge_s, 1),
        "naive_msgs_per_s": round(MESSAGES / naive_s, 1),
        "ratio": round(naive_s / bridge_s, 3),
        "messages": MESSAGES,
        "batch_size": settings.bridge_batch_size,
    }
    print(f"  {'loop':<46} {'seconds':>8} {'msgs/s':>9}")
    print(f"  {'naive (get, apply_async, ack; not durable)':<46} {naive_s:>8.2f} {result['naive_msgs_per_s']:>9.0f}")
    print(f"  {'bridge (inbox in Postgres, task, then ack)':<46} {bridge_s:>8.2f} {result['bridge_msgs_per_s']:>9.0f}")
    print(f"  ratio bridge/naive: {result['ratio']:.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {OUT}")


if __name__ == "__main__":
    main()
