"""Marketplace pushes: API calls and wall time against what the batch limits and quotas allow.

20,000 inventory and price updates (2,000 OMS messages of 10 items) over 2,000 SKUs, for one
Amazon and one Flipkart channel, go through the real bridge into the desired state; then the
marketplace workers push it. Quotas are the documented ones (Flipkart's, unpublished, are our
assumed 5/s per operation) scaled up by one factor on both sides, to keep the run short: the
ratios are what count. Amazon runs in PATCH mode (one call per SKU with every changed attribute);
the feed flow is exercised by the tests.

Then a second run over the same SKUs (BENCH_WARM_MESSAGES messages, 1000 by default), pushed by
fresh worker processes: what a push looks up (Flipkart's FSNs and locations, Amazon's product types)
is kept in Postgres, so it makes no look-ups. Both runs report look-up calls, and per SKU pushed.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

from tests.support import services
from tests.support.processes import wait_for
from tests.support.stack import Stack

SCALE = float(os.environ.get("BENCH_QUOTA_SCALE", "5"))
SKUS = [f"SKU-{n:04d}" for n in range(2000)]
MESSAGES, ITEMS = 2000, 10
# The second run, over the same SKUs with fresh workers: nothing is looked up again.
WARM_MESSAGES = int(os.environ.get("BENCH_WARM_MESSAGES", "1000"))
OUT = Path("build/bench/marketplaces.json")
QUOTAS = {  # documented (Flipkart: assumed) rate per second, per API operation
    "amazon": {"patchListingsItem": 5.0},
    "flipkart": {"updateInventory": 5.0, "updatePrice": 5.0},
}
CHANNELS = {
    "BZ": ("amazon", json.dumps({"client_id": "lwa-bz", "client_secret": "s-bz", "refresh_token": "r-bz"}),
           {"marketplace": "amazon", "client_id": "lwa-bz", "client_secret": "s-bz", "token": "r-bz", "quota_scale": SCALE}),
    "BF": ("flipkart", json.dumps({"app_id": "app-bf", "app_secret": "s-bf"}),
           {"marketplace": "flipkart", "client_id": "app-bf", "token": "s-bf", "quota_scale": SCALE}),
}


def messages(count: int = MESSAGES, seed: int = 11):
    rng = random.Random(seed)
    for n in range(count):
        skus = rng.sample(SKUS, ITEMS)
        if n % 2 == 0:
            rows = "".join(f'<EXTNInventoryItem ChannelID="{ch}" EAN="E-{s}" ItemID="{s}" Quantity="{rng.randint(0, 99)}"/>'
                           for ch in CHANNELS for s in skus)
            yield "inventory", f"<EXTNInventoryList><EXTNInventoryItemList>{rows}</EXTNInventoryItemList></EXTNInventoryList>", skus
        else:
            rows = "".join(f'<EXTNPriceItem ChannelID="{ch}" EAN="E-{s}" ItemID="{s}" MRP="5000.00" SellingPrice="{rng.randint(100, 4999)}.00"/>'
                           for ch in CHANNELS for s in skus)
            yield "pricing", f"<EXTNPriceList><EXTNPriceItemList>{rows}</EXTNPriceItemList></EXTNPriceList>", skus


def run(stack: Stack, count: int, seed: int, processed_before: int) -> dict:
    """Put `count` messages, let the bridge and OMS worker record them, then start the marketplace
    workers (fresh processes) and time the push; the figures per marketplace."""
    updates = {"inventory": Counter(), "pricing": Counter()}
    stack.reconnect()  # quiet during the last push: the broker may have dropped the connection
    for operation, body, skus in messages(count, seed):
        stack.put(operation, body.encode())
        updates[operation].update(skus)
    started = time.monotonic()
    wait_for(lambda: stack.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'") == processed_before + count,
             900, "every message processed", interval=0.5)
    ingest_s = time.monotonic() - started
    calls_before = len(stack.calls())
    events_before = stack.scalar("SELECT coalesce(max(id), 0) FROM events")
    # Push: the marketplace workers.
    started = time.monotonic()
    push_started_db = stack.scalar("SELECT extract(epoch FROM now())")
    pushers = [stack.add_worker("marketplace.amazon", concurrency=2), stack.add_worker("marketplace.flipkart", concurrency=2)]
    wait_for(lambda: stack.scalar("SELECT count(*) FROM listings WHERE dirty") == 0, 900, "everything pushed", interval=0.5)
    push_s = time.monotonic() - started
    for pusher in pushers:
        pusher.stop()  # the next run starts afresh: what it finds known, it found in Postgres
    calls = stack.calls()[calls_before:]
    result: dict = {"ingest_s": round(ingest_s, 2), "push_s": round(push_s, 2)}
    for channel_id, (marketplace, _, _) in CHANNELS.items():
        mine = [c for c in calls if c["channel"] == channel_id and c["operation"] in QUOTAS[marketplace]]
        by_op = Counter(c["operation"] for c in mine if c["status"] != 429)
        inventory_skus, price_skus = len(updates["inventory"]), len(updates["pricing"])
        pushed_skus = len(set(updates["inventory"]) | set(updates["pricing"]))
        if marketplace == "amazon":
            min_by_op = {"patchListingsItem": pushed_skus}
        else:
            min_by_op = {"updateInventory": math.ceil(inventory_skus / 10), "updatePrice": math.ceil(price_skus / 10)}
        rate = {op: r * SCALE for op, r in QUOTAS[marketplace].items()}
        mine_events = "channel_id = :c AND id > :e"
        pushes = stack.scalar(f"SELECT count(*) FROM events WHERE {mine_events} AND name LIKE '%/succeeded'",
                              c=channel_id, e=events_before)
        pushed_fields = stack.scalar(
            "SELECT coalesce(sum(jsonb_array_length(payload->'items')), 0) FROM events "
            f"WHERE {mine_events} AND name IN ('inventory/succeeded', 'pricing/succeeded')", c=channel_id, e=events_before)
        received = sum(updates["inventory"].values()) + sum(updates["pricing"].values())
        last = stack.scalar(f"SELECT extract(epoch FROM max(created_at)) FROM events WHERE {mine_events} "
                            "AND name IN ('inventory/succeeded', 'pricing/succeeded')", c=channel_id, e=events_before)
        # Look-ups (Flipkart FSNs, Amazon product types), kept in Postgres for every worker: not pushes.
        lookups = [c for c in calls if c["channel"] == channel_id and c["operation"] not in QUOTAS[marketplace]
                   and c["operation"] not in ("lwaToken", "token")]
        first = min((c["at"] for c in calls if c["channel"] == channel_id), default=float(push_started_db))
        result[marketplace] = {
            "calls": sum(by_op.values()),
            "min_calls": sum(min_by_op.values()),
            # Both channels' workers start together; each channel's time is to its last push.
            "wall_s": round(float(last) - float(push_started_db), 2),
            # The same, from the channel's first request (the workers' start-up left out).
            "wall_from_first_request_s": round(float(last) - first, 2),
            "min_wall_s": round(max(min_by_op[op] / rate[op] for op in min_by_op), 2),
            "coalesced": received - int(pushed_fields),
            "stale_pushes": 0,  # a push never carries an older value: see test_latest_value_wins
            "http_429": sum(1 for c in mine if c["status"] == 429),
            "lookups": len(lookups),
            "lookups_by_operation": dict(Counter(c["operation"] for c in lookups)),
            "skus": pushed_skus,
            "lookups_per_sku": round(len(lookups) / pushed_skus, 3),
            "outcome_events": pushes,
        }
    return result


def main() -> None:
    # A database and Redis database of the benchmark's own (WHEEL_BENCH_* when several people share the services).
    database_url = os.environ.get("WHEEL_BENCH_DATABASE_URL") or services.TEST_DATABASE_URL.rsplit("/", 1)[0] + "/wheel_bench"
    services.recreate_database(database_url)
    settings = services.test_settings(database_url=database_url,
                                      redis_url=os.environ.get("WHEEL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
                                      push_lease_s=60, visibility_timeout_s=300, sweeper_deadline_s=60)
    redis.Redis.from_url(settings.redis_url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="wheel-bench-"))
    stack = Stack(settings, tmp, {ch: behaviour for ch, (_, _, behaviour) in CHANNELS.items()})
    try:
        for channel_id, (marketplace, secret, _) in CHANNELS.items():
            options = {"bulk_threshold": 10**9} if marketplace == "amazon" else None
            stack.add_channel(channel_id, secret, marketplace=marketplace, quota_scale=SCALE,
                              **({"options": {"seller_id": channel_id, "bulk_threshold": 10**9,
                                              "lwa_url": f"{stack.sandbox_url}/amazon/auth/o2/token"}} if options else {}))
        stack.start_sandbox()
        print(f"marketplaces benchmark: {MESSAGES} messages, {MESSAGES * ITEMS} updates per channel over "
              f"{len(SKUS)} SKUs; quotas x{SCALE:g}; then {WARM_MESSAGES} more over the same SKUs (look-ups cached)")
        # Ingest: the bridge and the OMS worker record the desired state.
        stack.add_worker("oms,notifications", concurrency=2)
        stack.start_bridge()
        result = {"quota_scale": SCALE}
        for name, count, seed in (("first", MESSAGES, 11), ("second", WARM_MESSAGES, 12)):
            result[name] = run(stack, count, seed, MESSAGES if name == "second" else 0)
            report(name, result[name])
        # The first run's figures stay where they were, for comparison with earlier runs.
        result.update({k: result["first"][k] for k in ("amazon", "flipkart", "ingest_s", "push_s")})
    finally:
        stack.stop()
        services.delete_queues(services.TEST_AMQP_URL, [*settings.oms_queues.values(), settings.queue_backout])
        redis.Redis.from_url(settings.redis_url).flushdb()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {OUT}")


def report(name: str, r: dict) -> None:
    words = {"first": "first run, nothing looked up yet", "second": "second run, same SKUs, fresh workers"}[name]
    print(f"  {words}: ingest (bridge + parsing into desired state) {r['ingest_s']:.1f}s")
    print(f"  {'marketplace':<10} {'calls':>6} {'min':>6} {'ratio':>6} {'wall s':>7} {'min s':>7} {'ratio':>6} "
          f"{'coalesced':>9} {'429s':>5} {'look-ups':>8} {'per SKU':>7} {'from 1st request s':>18} {'ratio':>6}")
    for marketplace in ("amazon", "flipkart"):
        m = r[marketplace]
        print(f"  {marketplace:<10} {m['calls']:>6} {m['min_calls']:>6} {m['calls'] / m['min_calls']:>6.2f} "
              f"{m['wall_s']:>7.1f} {m['min_wall_s']:>7.1f} {m['wall_s'] / m['min_wall_s']:>6.2f} "
              f"{m['coalesced']:>9} {m['http_429']:>5} {m['lookups']:>8} {m['lookups_per_sku']:>7.3f} "
              f"{m['wall_from_first_request_s']:>18.1f} {m['wall_from_first_request_s'] / m['min_wall_s']:>6.2f}",
              flush=True)


if __name__ == "__main__":
    main()
