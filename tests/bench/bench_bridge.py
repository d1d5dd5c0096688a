"""Bridge throughput: OMS queue to enqueued Celery task, against two baselines on the same services.

- naive consumer: the loop most people would write with kombu: `basic.consume` (a kombu
  Consumer) with a prefetch of 100, `send_task` per message, ack; no inbox, not durable.
- ceiling: Celery's `send_task` in a tight loop to the same Redis through one producer (as the
  bridge sends its batches), nothing consumed: no loop that hands messages from RabbitMQ to Celery
  can go faster than this.
- naive get (kept for comparison with earlier runs): `basic.get` one message at a time, send, ack.

The bridge stores every message in Postgres (one transaction per batch), sends one task per chunk
of WHEEL_PROCESS_CHUNK messages (the baselines one per message: what the bridge sent before), and
only then acks. All run here, one after the other, on the same RabbitMQ, Redis and Postgres, with the
same number of messages, pre-loaded on their queues. The figures are ratios against the baselines
measured in the same run: on a shared machine the absolute rates move from run to run.
"""

from __future__ import annotations

import base64
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
PREFETCH = 100
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
DATABASE = os.environ.get("BENCH_DATABASE", "wheel_bench")
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


def naive_get(settings, queue: str, count: int) -> float:
    app = celery_app(settings)
    with kombu.Connection(settings.oms_url.get_secret_value()) as connection:
        bound = kombu.Queue(queue, exchange="", routing_key=queue, no_declare=True)(connection.default_channel)
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


def naive_consume(settings, queue: str, count: int) -> float:
    """basic.consume with a prefetch of PREFETCH; per message: send its task, ack it."""
    app = celery_app(settings)
    done = 0

    def on_message(message) -> None:
        nonlocal done
        app.send_task("wheel.oms.process_message", args=[0], queue="oms")
        message.ack()
        done += 1

    with kombu.Connection(settings.oms_url.get_secret_value()) as connection:
        channel = connection.channel()
        # Declared by the preload (a quorum queue): consumed as it is.
        source = kombu.Queue(queue, exchange="", routing_key=queue, no_declare=True)
        with kombu.Consumer(channel, queues=[source], on_message=on_message, prefetch_count=PREFETCH):
            started = time.perf_counter()
            while done < count:
                connection.drain_events(timeout=10)
            elapsed = time.perf_counter() - started
    return elapsed


def ceiling(settings, count: int) -> float:
    """send_task in a tight loop through one producer (as the bridge sends a batch): Celery's own
    rate to this Redis, with nothing consumed."""
    app = celery_app(settings)
    with app.producer_or_acquire() as producer:
        app.send_task("wheel.oms.process_message", args=[0], queue="oms", producer=producer)  # connected before timing
        redis.Redis.from_url(settings.redis_url).delete("oms")
        started = time.perf_counter()
        for _ in range(count):
            app.send_task("wheel.oms.process_message", args=[0], queue="oms", producer=producer)
        return time.perf_counter() - started


def tasks_enqueued(settings) -> tuple[int, int]:
    """(tasks, messages) waiting on the oms queue: a process_messages task carries a chunk of ids."""
    tasks = redis.Redis.from_url(settings.redis_url).lrange("oms", 0, -1)
    messages = 0
    for raw in tasks:
        [first, *_], _, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        messages += len(first) if isinstance(first, list) else 1
    return len(tasks), messages


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
    database_url = services.TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + DATABASE
    services.recreate_database(database_url)
    settings = services.test_settings(database_url=database_url, redis_url=REDIS_URL)
    engine = make_engine(database_url)
    queues = [*settings.oms_queues.values(), settings.queue_backout]
    naive_queues = {"consume": settings.queue_ranging + ".NAIVE-CONSUME", "get": settings.queue_ranging + ".NAIVE-GET"}
    flush = redis.Redis.from_url(settings.redis_url).flushdb
    seconds: dict[str, float] = {}
    tasks: dict[str, int] = {}
    try:
        flush()
        print(f"bridge benchmark: {MESSAGES} messages each, pre-loaded on RabbitMQ (quorum queues)")
        for queue in naive_queues.values():
            preload(settings, queue, MESSAGES)
        preload(settings, settings.queue_ranging, MESSAGES)
        for name, run in (("ceiling", lambda: ceiling(settings, MESSAGES)),
                          ("naive_consume", lambda: naive_consume(settings, naive_queues["consume"], MESSAGES)),
                          ("naive_get", lambda: naive_get(settings, naive_queues["get"], MESSAGES)),
                          ("bridge", lambda: bridge(settings, MESSAGES, engine))):
            flush()
            seconds[name] = run()
            tasks[name], messages = tasks_enqueued(settings)
            assert messages == MESSAGES, f"{name}: tasks for {messages} messages of {MESSAGES}"
    finally:
        services.delete_queues(services.TEST_AMQP_URL, [*queues, *naive_queues.values()])
        flush()
        engine.dispose()
    rate = {name: MESSAGES / s for name, s in seconds.items()}
    result = {
        "bridge_msgs_per_s": round(rate["bridge"], 1),
        "naive_consume_msgs_per_s": round(rate["naive_consume"], 1),
        "ceiling_msgs_per_s": round(rate["ceiling"], 1),
        "naive_get_msgs_per_s": round(rate["naive_get"], 1),
        # The bridge's rate over each baseline's (1.0: as fast; below 1: slower).
        "ratio_to_naive_consume": round(rate["bridge"] / rate["naive_consume"], 3),
        "ratio_to_ceiling": round(rate["bridge"] / rate["ceiling"], 3),
        "ratio_to_naive_get": round(rate["bridge"] / rate["naive_get"], 3),
        "messages": MESSAGES,
        "batch_size": settings.bridge_batch_size,
        "process_chunk": settings.process_chunk,
        "bridge_tasks": tasks["bridge"],
        "naive_prefetch": PREFETCH,
    }
    labels = {
        "ceiling": "ceiling (send_task in a tight loop, one producer)",
        "naive_consume": f"naive (basic.consume prefetch {PREFETCH}, send, ack)",
        "naive_get": "naive (basic.get one at a time, send, ack)",
        "bridge": f"bridge (inbox in Postgres, task per {settings.process_chunk}, then ack)",
    }
    print(f"  {'loop':<50} {'seconds':>8} {'msgs/s':>9} {'bridge/this':>11}")
    for name, label in labels.items():
        print(f"  {label:<50} {seconds[name]:>8.2f} {rate[name]:>9.0f} {rate['bridge'] / rate[name]:>11.2f}")
    print(f"  the bridge sent {tasks['bridge']} tasks for {MESSAGES} messages; the others one per message")
    print("  naive loops and the ceiling are not durable: no inbox row, a crash after the ack loses the message")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {OUT}")


if __name__ == "__main__":
    main()
