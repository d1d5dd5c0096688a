"""Orders from the sandbox to the OMS queue: throughput, and latency against the pull interval.

Two parts, each on its own channels of all three marketplaces, through real beat, workers and
publisher (the outbox), with a consumer reading the OMS orders queue as the OMS would:

- throughput: a backlog of BENCH_ORDERS_BACKLOG orders per channel, pulled by one run each
  (`jobs run-now`); orders per second from the run's start to the last order on the queue. The
  baseline, measured in the same run on channels of its own, is the naive loop with no Postgres
  and no outbox: the adapter's pull, each document put straight on a queue (a confirmed put each),
  run just before and just after Wheel's run and averaged, as the load of a shared machine drifts.
  The ratio is the cost of exactly-once delivery.
- latency: orders created at a steady rate while beat pulls every BENCH_PULL_INTERVAL_S; the time
  from an order's creation in the sandbox to its message on the OMS queue (median, p99), next to
  the pull interval. Amazon's window must end a settle lag before now (120 s on the real API, the
  2-minute rule): the sandbox's is shortened to BENCH_AMAZON_LAG_S here, and it is reported.

Quotas are the documented ones (Flipkart's and Tata CLiQ's are not published) scaled by
BENCH_QUOTA_SCALE on both sides; searchOrders' 1 call per 3 minutes would otherwise make a
benchmark of the quota.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis
from lxml import etree

from bridge.transports.amqp import AmqpTransport
from tests.support import services
from tests.support.processes import wait_for
from tests.support.stack import Stack
from wheel.db.models import Channel
from wheel.marketplaces import adapter_for
from wheel.marketplaces.base import HttpConfig, PullWindow
from wheel.oms.orders import order_document
from wheel.quota import RedisQuotaGate, effective_quotas
from wheel.secrets import SecretStore
from wheel.services import schedules
from wheel.services.sync import channel_config

SCALE = float(os.environ.get("BENCH_QUOTA_SCALE", "100"))
BACKLOG = int(os.environ.get("BENCH_ORDERS_BACKLOG", "2000"))
INTERVAL_S = int(os.environ.get("BENCH_PULL_INTERVAL_S", "5"))
RATE = float(os.environ.get("BENCH_ORDERS_RATE", "5"))  # orders per second per channel, latency part
LATENCY_S = float(os.environ.get("BENCH_LATENCY_S", "40"))
AMAZON_LAG_S = float(os.environ.get("BENCH_AMAZON_LAG_S", "2"))
OUT = Path("build/bench/orders.json")
# BENCH_ORDERS_MARKETPLACES=tatacliq (comma-separated) measures some of them only.
MARKETPLACES = tuple(os.environ.get("BENCH_ORDERS_MARKETPLACES", "tatacliq,flipkart,amazon").split(","))


def channel_spec(channel_id: str, marketplace: str) -> tuple[str, dict]:
    """Wheel's secret and the sandbox's side of a channel."""
    low = channel_id.lower()
    if marketplace == "tatacliq":
        return f"token-{low}", {"marketplace": "tatacliq", "token": f"token-{low}"}
    if marketplace == "flipkart":
        return (json.dumps({"app_id": f"app-{low}", "app_secret": f"s-{low}"}),
                {"marketplace": "flipkart", "client_id": f"app-{low}", "token": f"s-{low}", "quota_scale": SCALE})
    return (json.dumps({"client_id": f"lwa-{low}", "client_secret": f"s-{low}", "refresh_token": f"r-{low}"}),
            {"marketplace": "amazon", "client_id": f"lwa-{low}", "client_secret": f"s-{low}", "token": f"r-{low}",
             "quota_scale": SCALE, "order_lag_s": AMAZON_LAG_S})


# The naive loop runs before Wheel's run on the baseline channels and after it on channels of
# their own (M), each with the same backlog and a full quota, as the sandbox keeps Amazon's quota per channel.
GROUPS = {"throughput": "T", "baseline": "N", "baseline_after": "M", "latency": "L"}
CHANNELS = {f"{prefix}{m[0].upper()}": m for prefix in GROUPS.values() for m in MARKETPLACES}


class Consumer(threading.Thread):
    """Reads the OMS orders queue, noting when each (channel, order) arrived."""

    def __init__(self, url: str, queue: str):
        super().__init__(daemon=True)
        self.url, self.queue = url, queue
        self.arrivals: dict[tuple[str, str], float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        transport = AmqpTransport(self.url)
        transport.connect()
        try:
            while not self.stop.is_set():
                delivery = transport.get_one(self.queue, wait_s=0.2)
                if delivery is None:
                    continue
                root = etree.fromstring(delivery.body)
                self.arrivals.setdefault((root.get("EntryType"), root.get("OrderNo")), time.time())
        finally:
            transport.close()


def naive_baseline(stack: Stack, channel_id: str, queue: str) -> float:
    """The adapter's pull and a put per order: no database, no outbox. Orders per second."""
    with stack.sessions() as session:
        channel = session.get(Channel, channel_id)
        config = channel_config(channel)
        quota_scale, quotas = channel.quota_scale, channel.quotas
    adapter = adapter_for(config, HttpConfig(5, 60), SecretStore({}, stack.settings.secrets_dir))
    gate = RedisQuotaGate(redis.Redis.from_url(stack.settings.redis_url), f"naive-{channel_id}",
                          effective_quotas(adapter.capabilities.quotas, quota_scale, quotas))
    caps = adapter.pull_capabilities
    now = datetime.now(timezone.utc)
    window = PullWindow(now - timedelta(hours=1), now - timedelta(seconds=caps.settle_lag_s))
    transport = AmqpTransport(stack.settings.oms_url.get_secret_value())
    transport.connect()
    transport.declare([queue])
    sent, started = 0, time.monotonic()
    try:
        for page in adapter.pull("orders", window, None, _Waiting(gate)):
            for order in page.orders:
                transport.put(queue, order_document(order, {"EntryType": channel_id}), message_id=uuid.uuid4().hex)
                sent += 1
    finally:
        transport.close()
    elapsed = time.monotonic() - started
    assert sent == BACKLOG, f"naive baseline pulled {sent} of {BACKLOG} orders from {channel_id}"
    return sent / elapsed


class _Waiting:
    """A quota gate that waits out QuotaWait (the naive loop has no scheduler to come back later)."""

    def __init__(self, gate):
        self.gate = gate

    def acquire(self, operation: str) -> None:
        from wheel.marketplaces.base import QuotaWait

        while True:
            try:
                return self.gate.acquire(operation)
            except QuotaWait as wait:
                time.sleep(wait.retry_in_s)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    # A database and Redis database of the benchmark's own (WHEEL_BENCH_* when several people share the services).
    database_url = os.environ.get("WHEEL_BENCH_DATABASE_URL") or services.TEST_DATABASE_URL.rsplit("/", 1)[0] + "/wheel_bench"
    services.recreate_database(database_url)
    settings = services.test_settings(database_url=database_url,
                                      redis_url=os.environ.get("WHEEL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
                                      visibility_timeout_s=300, sweeper_deadline_s=60, job_run_deadline_s=120,
                                      orders_initial_lookback_s=3600, http_read_timeout_s=60)
    redis.Redis.from_url(settings.redis_url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="wheel-bench-"))
    specs = {ch: channel_spec(ch, m) for ch, m in CHANNELS.items()}
    stack = Stack(settings, tmp, {ch: sandbox for ch, (_, sandbox) in specs.items()})
    naive_queue = f"BENCH.NAIVE.{uuid.uuid4().hex[:8]}"
    consumer = Consumer(settings.oms_url.get_secret_value(), settings.queue_orders)
    result: dict = {}
    try:
        stack.start_sandbox()
        for channel_id, marketplace in CHANNELS.items():
            options = {"oms_header": {"EntryType": channel_id}}
            if marketplace == "amazon":
                options.update(seller_id=channel_id, lwa_url=f"{stack.sandbox_url}/amazon/auth/o2/token", order_lag_s=AMAZON_LAG_S)
            stack.add_channel(channel_id, specs[channel_id][0], marketplace=marketplace, options=options, quota_scale=SCALE)
            with stack.sessions.begin() as session:
                channel = session.get(Channel, channel_id)
                jobs = {"orders": f"* * * * * */{INTERVAL_S}"}
                schedules.ensure_schedules(session, channel, jobs=jobs)
                if not channel_id.startswith(GROUPS["latency"]):
                    schedules.set_enabled(session, channel_id, "orders", False)  # run by hand below
        stack.add_worker("oms,notifications,publisher", concurrency=1)
        stack.add_worker("marketplace.amazon,marketplace.flipkart,marketplace.tatacliq", concurrency=3)
        stack.start_beat()
        consumer.start()
        print(f"orders benchmark: backlog {BACKLOG} orders per channel; latency at {RATE:g} orders/s per channel "
              f"for {LATENCY_S:g}s, pulls every {INTERVAL_S}s; quotas x{SCALE:g}")

        # -- throughput: Wheel, then the naive baseline -------------------------------------------
        for prefix in (GROUPS["throughput"], GROUPS["baseline"], GROUPS["baseline_after"]):
            for marketplace in MARKETPLACES:
                stack.create_orders(f"{prefix}{marketplace[0].upper()}", BACKLOG, lines_per_order=2, seed=1)
        time.sleep(AMAZON_LAG_S + 6)  # past Amazon's settle lag, so one window holds the whole backlog
        from workers.bootstrap import celery_app
        from workers.dispatch import Dispatcher

        dispatch = Dispatcher(celery_app(stack.settings))
        for marketplace in MARKETPLACES:
            channel_id = f"{GROUPS['throughput']}{marketplace[0].upper()}"
            naive_channel = f"{GROUPS['baseline']}{marketplace[0].upper()}"
            # The naive loop just before and just after Wheel's run, on backlogs of the same size: on
            # a shared machine the load drifts, and the two bracket Wheel's run.
            naive_before = naive_baseline(stack, naive_channel, naive_queue)
            with stack.sessions.begin() as session:
                run = schedules.run_now(session, channel_id, "orders")
            started = time.time()
            dispatch.run_job(run.run_id, marketplace)
            wait_for(lambda: sum(1 for (ch, _) in list(consumer.arrivals) if ch == channel_id) >= BACKLOG, 600,
                     f"{channel_id}'s backlog on the OMS queue", interval=0.2)
            last = max(t for (ch, _), t in list(consumer.arrivals.items()) if ch == channel_id)
            wheel_rate = BACKLOG / (last - started)
            naive_after = naive_baseline(stack, f"{GROUPS['baseline_after']}{marketplace[0].upper()}", naive_queue)
            naive_rate = (naive_before + naive_after) / 2
            result[marketplace] = {"orders_per_s": round(wheel_rate, 1), "naive_orders_per_s": round(naive_rate, 1),
                                   "naive_before_after": [round(naive_before, 1), round(naive_after, 1)],
                                   "ratio_to_naive": round(wheel_rate / naive_rate, 3)}
            print(f"  {marketplace:<9} throughput {wheel_rate:7.1f} orders/s; naive loop {naive_rate:7.1f}/s "
                  f"(before {naive_before:.1f}, after {naive_after:.1f}); ratio {wheel_rate / naive_rate:.2f}")

        # -- latency under a steady flow ---------------------------------------------------------
        created: dict[tuple[str, str], float] = {}
        deadline = time.monotonic() + LATENCY_S
        tick = 1.0
        while time.monotonic() < deadline:
            for marketplace in MARKETPLACES:
                channel_id = f"{GROUPS['latency']}{marketplace[0].upper()}"
                for order in stack.create_orders(channel_id, int(RATE * tick), lines_per_order=2):
                    created[(channel_id, order["order_id"])] = order["created"]
            time.sleep(tick)
        wait_for(lambda: all(key in consumer.arrivals for key in created), 300, "every steady-flow order on the queue",
                 interval=0.5)
        for marketplace in MARKETPLACES:
            channel_id = f"{GROUPS['latency']}{marketplace[0].upper()}"
            latencies = [consumer.arrivals[key] - at for key, at in created.items() if key[0] == channel_id]
            lag = AMAZON_LAG_S + 5 if marketplace == "amazon" else 0.0
            result[marketplace].update({
                "latency_p50_s": round(statistics.median(latencies), 2),
                "latency_p99_s": round(percentile(latencies, 0.99), 2),
                "pull_interval_s": INTERVAL_S, "settle_lag_s": lag, "latency_orders": len(latencies),
            })
            r = result[marketplace]
            print(f"  {marketplace:<9} latency p50 {r['latency_p50_s']:6.2f}s  p99 {r['latency_p99_s']:6.2f}s  "
                  f"(pull every {INTERVAL_S}s, settle lag {lag:g}s; {len(latencies)} orders)")
        result["quota_scale"] = SCALE
        result["backlog_per_channel"] = BACKLOG
    finally:
        consumer.stop.set()
        stack.stop()
        services.delete_queues(services.TEST_AMQP_URL, [*settings.oms_queues.values(), settings.queue_backout,
                                                        settings.queue_orders, settings.queue_cancellations, naive_queue])
        redis.Redis.from_url(settings.redis_url).flushdb()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {OUT}")


if __name__ == "__main__":
    main()
