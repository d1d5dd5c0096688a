"""Ingest throughput: stored OMS messages turned into desired state, against the bridge in the same run.

BENCH_INGEST_MESSAGES inventory and price messages of 10 items each (5 SKUs on each of two
channels, drawn in turn from a pool of SKUS, so later messages replace values not yet pushed, as
in a burst) are put on the OMS queues. The bridge (tests/bench/bench_bridge.py's `bridge`) takes
them into the inbox and sends their tasks: its msgs/s. Then the `wheel.oms.process_messages` task's
body runs for each chunk of WHEEL_PROCESS_CHUNK stored messages in turn, as the bridge sends them
to the workers, in this process, on the real Postgres and Redis (no Celery worker, so no broker
round trip: the cost of the task itself): its msgs/s, and the SQL
statements it sends per message (SQLAlchemy's `before_cursor_execute`; an executemany counts once per
parameter set, as Postgres runs it once per set).

The machine is shared and the numbers noisy: the ratio of the two, measured one after the other on
the same services, is the number to compare between runs.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import redis
from celery import Celery
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url

from bridge.transports import transport_for_settings
from tests.bench.bench_bridge import bridge
from tests.support import services
from wheel.db import make_engine, make_sessionmaker
from wheel.services.channels import add_channel
from workers import tasks
from workers.bootstrap import celery_app

MESSAGES = int(os.environ.get("BENCH_INGEST_MESSAGES", "2000"))
ITEMS = 10
SKUS = int(os.environ.get("BENCH_INGEST_SKUS", "2000"))
CHANNELS = ("UA", "UB")
OUT = Path("build/bench/ingest.json")


def body(n: int) -> tuple[str, bytes]:
    """Message n: inventory when n is even, prices when odd; 10 items, 5 per channel."""
    skus = [f"SKU-{(n * ITEMS // 2 + i) % SKUS:05d}" for i in range(ITEMS // 2)]
    if n % 2 == 0:
        rows = "".join(f'<EXTNInventoryItem ChannelID="{ch}" EAN="E-{sku}" ItemID="{sku}" Quantity="{n}"/>'
                       for ch in CHANNELS for sku in skus)
        return "inventory", f"<EXTNInventoryList><EXTNInventoryItemList>{rows}</EXTNInventoryItemList></EXTNInventoryList>".encode()
    rows = "".join(f'<EXTNPriceItem ChannelID="{ch}" EAN="E-{sku}" ItemID="{sku}" MRP="99999.00" SellingPrice="{1000 + n}.00"/>'
                   for ch in CHANNELS for sku in skus)
    return "pricing", f"<EXTNPriceList><EXTNPriceItemList>{rows}</EXTNPriceItemList></EXTNPriceList>".encode()


def preload(settings, count: int) -> None:
    transport = transport_for_settings(settings)  # the OMS queues as the bridge declares them
    transport.connect()
    try:
        for n in range(count):
            operation, payload = body(n)
            transport.put(settings.queue_for(operation), payload, message_id=f"bench-ingest-{n}")
    finally:
        transport.close()


def add_channels(sessions) -> None:
    with sessions.begin() as session:
        for channel_id in CHANNELS:
            add_channel(session, channel_id=channel_id, marketplace="tatacliq", base_url="http://127.0.0.1:9/tatacliq",
                        credentials_ref=f"tatacliq-{channel_id.lower()}", known_marketplaces=("tatacliq",))


def ingest(app: Celery, inbox_ids: list[int]) -> tuple[float, Counter]:
    """Run the process_messages task's body for each chunk of messages; seconds, and statements by
    their first line."""
    assert app.wheel_settings  # the task finds its settings on the current app (this one)
    statements: Counter = Counter()

    def count(conn, cursor, statement, parameters, context, executemany):
        statements[statement.split("\n", 1)[0][:90]] += len(parameters) if executemany else 1

    event.listen(Engine, "before_cursor_execute", count)
    try:
        started = time.perf_counter()
        chunk = app.wheel_settings.process_chunk
        for start in range(0, len(inbox_ids), chunk):
            tasks.process_messages(inbox_ids[start:start + chunk])  # called directly: the task's body, in this process
        elapsed = time.perf_counter() - started
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    return elapsed, statements


def main() -> None:
    test_db = make_url(services.TEST_DATABASE_URL)
    database_url = test_db.set(database=f"{test_db.database}_bench").render_as_string(hide_password=False)
    services.recreate_database(database_url)
    settings = services.test_settings(database_url=database_url, redis_url=services.TEST_REDIS_URL)
    engine = make_engine(database_url)
    flags = redis.Redis.from_url(settings.redis_url)
    try:
        flags.flushdb()
        add_channels(make_sessionmaker(engine))
        print(f"ingest benchmark: {MESSAGES} messages of {ITEMS} items, pre-loaded on RabbitMQ, "
              f"{SKUS} SKUs on {len(CHANNELS)} channels")
        preload(settings, MESSAGES)
        bridge_s = bridge(settings, MESSAGES, engine)
        flags.flushdb()  # the bridge's tasks: the benchmark runs their bodies itself
        with engine.connect() as connection:
            inbox_ids = list(connection.execute(text("SELECT id FROM inbox ORDER BY id")).scalars())
        app = celery_app(settings)  # the current app, whose settings the task reads
        ingest_s, statements = ingest(app, inbox_ids)
        with engine.connect() as connection:
            outcomes = dict(connection.execute(text("SELECT status, count(*) FROM inbox GROUP BY status")).all())
            events = dict(connection.execute(text("SELECT name, count(*) FROM events GROUP BY name")).all())
        assert outcomes == {"processed": MESSAGES}, f"messages by status: {outcomes}"
    finally:
        services.delete_queues(services.TEST_AMQP_URL, [*settings.oms_queues.values(), settings.queue_backout])
        flags.flushdb()
        engine.dispose()
    total = sum(statements.values())
    result = {
        "ingest_msgs_per_s": round(MESSAGES / ingest_s, 1),
        "bridge_msgs_per_s": round(MESSAGES / bridge_s, 1),
        "ratio": round(bridge_s / ingest_s, 3),
        "statements_per_message": round(total / MESSAGES, 2),
        "statements": {sql: round(n / MESSAGES, 2) for sql, n in statements.most_common()},
        "events": events,
        "messages": MESSAGES,
        "items_per_message": ITEMS,
    }
    print(f"  {'loop':<52} {'seconds':>8} {'msgs/s':>9}")
    print(f"  {'bridge (queue to inbox row and task)':<52} {bridge_s:>8.2f} {result['bridge_msgs_per_s']:>9.0f}")
    print(f"  {'ingest (process_messages task body: parse, upsert, events)':<52} {ingest_s:>8.2f} "
          f"{result['ingest_msgs_per_s']:>9.0f}")
    print(f"  ratio ingest/bridge: {result['ratio']:.2f}; {result['statements_per_message']:.1f} SQL statements per message")
    for sql, n in result["statements"].items():
        print(f"    {n:6.2f}  {sql}")
    print(f"  events: {', '.join(f'{name} {n}' for name, n in sorted(events.items()))}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {OUT}")


if __name__ == "__main__":
    main()
