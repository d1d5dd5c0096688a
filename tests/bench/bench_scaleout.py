"""Scale-out: throughput of the two work queues with 1, 2 and 4 worker processes on this machine.

Each worker is a real Celery worker process (`celery worker -c 1`, prefork: one process doing the
work), as a second host would add one; every one of them shares the one Postgres and Redis. For
each count n:

- OMS queue (`oms`, task `process_messages`): BENCH_SCALEOUT_MESSAGES inventory messages of 10
  items are stored in the inbox as the bridge stores them, the n workers are started and ready,
  and then one task per chunk of WHEEL_PROCESS_CHUNK messages is sent (as the bridge sends them);
  messages per second from the first task sent to the last message processed.
- Marketplace queue (`marketplace.tatacliq`, task `sync_channel`, the pushes):
  BENCH_SCALEOUT_CHANNELS Tata CLiQ channels with BENCH_SCALEOUT_SKUS SKUs each get a new
  quantity for every SKU (written in this process through the message service, so no task is
  sent), the n workers are started, and one sync task per channel is sent; SKUs pushed per second
  from then until no listing is dirty. Tata CLiQ publishes no quota, so the quota is not what
  limits it; the sandbox answers every push.

The efficiency at n is throughput(n) / (n x throughput(1)): 1.0 is perfect scaling. Every
process here (Postgres, Redis, the sandbox, the workers, and whatever else runs on the machine)
shares the same CPUs (`os.cpu_count()` is reported): beyond that many workers, efficiency falls,
and that is the finding, not a fault of the benchmark.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import redis

from tests.support import services
from tests.support.processes import wait_for
from tests.support.stack import Stack
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message

MESSAGES = int(os.environ.get("BENCH_SCALEOUT_MESSAGES", "1500"))
CHANNELS = int(os.environ.get("BENCH_SCALEOUT_CHANNELS", "16"))
SKUS = int(os.environ.get("BENCH_SCALEOUT_SKUS", "300"))
WORKERS = tuple(int(n) for n in os.environ.get("BENCH_SCALEOUT_WORKERS", "1,2,4").split(","))
ITEMS = 10
OUT = Path("build/bench/scaleout.json")

# The OMS part's messages name channels of a marketplace no worker here pushes for (Flipkart), so
# what they make dirty is not pushed, and the push part counts only its own (Tata CLiQ) SKUs.
OMS_CHANNELS = ("SF1", "SF2")


def push_channels() -> list[str]:
    return [f"ST{n:02d}" for n in range(CHANNELS)]


def inventory(items: list[tuple[str, str, int]]) -> bytes:
    rows = "".join(f'<EXTNInventoryItem ChannelID="{c}" EAN="E-{s}" ItemID="{s}" Quantity="{q}"/>' for c, s, q in items)
    return f"<EXTNInventoryList><EXTNInventoryItemList>{rows}</EXTNInventoryItemList></EXTNInventoryList>".encode()


def oms_messages(round_no: int) -> list[bytes]:
    """MESSAGES inventory messages of 10 items (5 SKUs on each OMS channel), values new each round."""
    out = []
    for n in range(MESSAGES):
        skus = [f"SKU-{(n * 5 + i) % 2000:04d}" for i in range(5)]
        out.append(inventory([(ch, s, round_no * 1000 + n % 1000) for ch in OMS_CHANNELS for s in skus]))
    return out


def start_workers(stack: Stack, queue: str, n: int) -> list:
    return [stack.add_worker(queue, concurrency=1) for _ in range(n)]


def stop_workers(stack: Stack, workers: list) -> None:
    for worker in workers:
        worker.stop()
        stack.workers.remove(worker)


def oms_round(stack: Stack, dispatch, n: int, round_no: int) -> float:
    """Messages per second through `process_messages` with n workers."""
    settings = stack.settings
    with stack.sessions.begin() as session:
        stored = store_batch(session, [IncomingMessage(settings.queue_inventory, body, f"scale-{round_no}-{i}")
                                       for i, body in enumerate(oms_messages(round_no))])
    ids = [s.inbox_id for s in stored]
    workers = start_workers(stack, "oms", n)
    try:
        started = time.time()
        dispatch.process_messages(ids)
        wait_for(lambda: stack.scalar("SELECT count(*) FROM inbox WHERE id = ANY(:ids) AND status <> 'received'",
                                      ids=ids) == len(ids), 900, f"{len(ids)} messages processed by {n} workers",
                 interval=0.2)
        last = stack.scalar("SELECT extract(epoch FROM max(processed_at)) FROM inbox WHERE id = ANY(:ids)", ids=ids)
        failed = stack.scalar("SELECT count(*) FROM inbox WHERE id = ANY(:ids) AND status <> 'processed'", ids=ids)
        assert failed == 0, f"{failed} messages not processed: {stack.logs()[-3000:]}"
        return len(ids) / (float(last) - started)
    finally:
        stop_workers(stack, workers)


def push_round(stack: Stack, dispatch, n: int, round_no: int) -> tuple[float, int]:
    """SKUs pushed per second by the sync tasks with n workers; and how many."""
    settings = stack.settings
    channels = push_channels()
    for channel_id in channels:
        body = inventory([(channel_id, f"SKU-{s:04d}", round_no * 10 + 1) for s in range(SKUS)])
        with stack.sessions.begin() as session:
            [row] = store_batch(session, [IncomingMessage(settings.queue_inventory, body, f"push-{round_no}-{channel_id}")])
        process_message(stack.sessions, row.inbox_id, operation_for_queue={settings.queue_inventory: "inventory"}.get,
                        max_message_bytes=settings.max_message_bytes)
    dirty = "SELECT count(*) FROM listings WHERE dirty AND channel_id = ANY(:chs)"
    skus = stack.scalar(dirty, chs=channels)
    assert skus == CHANNELS * SKUS, f"{skus} dirty listings, expected {CHANNELS * SKUS}"
    time.sleep(0.5)  # past the settle time (SETTLE_S, 0.3 s): every row is claimable at once
    workers = start_workers(stack, "marketplace.tatacliq", n)
    try:
        started = time.time()
        for channel_id in channels:
            dispatch.sync(channel_id, "tatacliq")
        wait_for(lambda: stack.scalar(dirty, chs=channels) == 0, 900, f"{skus} SKUs pushed by {n} workers", interval=0.2)
        last = stack.scalar("SELECT extract(epoch FROM max(created_at)) FROM events WHERE channel_id = ANY(:chs) "
                            "AND name = 'inventory/succeeded'", chs=channels)
        return skus / (float(last) - started), skus
    finally:
        stop_workers(stack, workers)


def main() -> None:
    # A database and Redis database of the benchmark's own (WHEEL_BENCH_* when several people share the services).
    database_url = os.environ.get("WHEEL_BENCH_DATABASE_URL") or services.TEST_DATABASE_URL.rsplit("/", 1)[0] + "/wheel_bench"
    services.recreate_database(database_url)
    settings = services.test_settings(database_url=database_url,
                                      redis_url=os.environ.get("WHEEL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
                                      push_lease_s=60, visibility_timeout_s=300, sweeper_deadline_s=600,
                                      http_read_timeout_s=30)
    flags = redis.Redis.from_url(settings.redis_url)
    flags.flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="wheel-bench-"))
    sandbox = {ch: {"marketplace": "tatacliq", "token": f"token-{ch.lower()}"} for ch in push_channels()}
    stack = Stack(settings, tmp, sandbox)
    result: dict = {"cpus": os.cpu_count(), "messages": MESSAGES, "items_per_message": ITEMS,
                    "push_channels": CHANNELS, "skus_per_channel": SKUS, "oms": {}, "push": {}}
    try:
        stack.start_sandbox()
        for channel_id in push_channels():
            stack.add_channel(channel_id, f"token-{channel_id.lower()}", marketplace="tatacliq")
        for channel_id in OMS_CHANNELS:
            stack.add_channel(channel_id, json.dumps({"app_id": "a", "app_secret": "s"}), marketplace="flipkart")
        from workers.bootstrap import celery_app
        from workers.dispatch import Dispatcher

        dispatch = Dispatcher(celery_app(stack.settings), chunk=stack.settings.process_chunk)
        print(f"scale-out benchmark: {os.cpu_count()} CPUs; OMS queue: {MESSAGES} messages of {ITEMS} items; "
              f"marketplace queue: {CHANNELS} Tata CLiQ channels x {SKUS} SKUs; workers {', '.join(map(str, WORKERS))}")
        for round_no, n in enumerate(WORKERS, start=1):
            oms_rate = oms_round(stack, dispatch, n, round_no)
            flags.flushdb()  # the sync tasks the messages sent (for channels no worker here pushes)
            push_rate, skus = push_round(stack, dispatch, n, round_no)
            flags.flushdb()
            result["oms"][str(n)] = {"messages_per_s": round(oms_rate, 1)}
            result["push"][str(n)] = {"skus_per_s": round(push_rate, 1), "skus": skus}
            print(f"  {n} worker(s): OMS queue {oms_rate:7.1f} messages/s; marketplace queue {push_rate:7.1f} SKUs/s",
                  flush=True)
        base_oms, base_push = result["oms"]["1"]["messages_per_s"], result["push"]["1"]["skus_per_s"]
        for n in WORKERS:
            result["oms"][str(n)]["efficiency"] = round(result["oms"][str(n)]["messages_per_s"] / (n * base_oms), 3)
            result["push"][str(n)]["efficiency"] = round(result["push"][str(n)]["skus_per_s"] / (n * base_push), 3)
        print(f"  {'workers':>7} {'OMS msgs/s':>11} {'efficiency':>10} {'push SKUs/s':>12} {'efficiency':>10}")
        for n in WORKERS:
            o, p = result["oms"][str(n)], result["push"][str(n)]
            print(f"  {n:>7} {o['messages_per_s']:>11.1f} {o['efficiency']:>10.2f} {p['skus_per_s']:>12.1f} "
                  f"{p['efficiency']:>10.2f}")
    finally:
        stack.stop()
        services.delete_queues(services.TEST_AMQP_URL, [*settings.oms_queues.values(), settings.queue_backout])
        flags.flushdb()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {OUT}")


if __name__ == "__main__":
    main()
