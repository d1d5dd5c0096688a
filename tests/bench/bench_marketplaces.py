"""Marketplace pushes: API calls and wall time against what the batch limits and quotas allow.

20,000 inventory and price updates (2,000 OMS messages of 10 items) over 2,000 SKUs, for one
Amazon and one Flipkart channel, go through the real bridge into the desired state; then the
marketplace workers push it. Quotas are the documented ones (Flipkart's, unpublished, are our
assumed 5/s per operation) scaled up by one factor on both sides, to keep the run short: the
ratios are what count. Amazon runs in PATCH mode (one call per SKU with every changed attribute);
the feed flow is exercised by the tests.
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


def messages():
    rng = random.Random(11)
    for n in range(MESSAGES):
        skus = rng.sample(SKUS, ITEMS)
        if n % 2 == 0:
            rows = "".join(f'<EXTNInventoryItem ChannelID="{ch}" EAN="E-{s}" ItemID="{s}" Quantity="{rng.randint(0, 99)}"/>'
                           for ch in CHANNELS for s in skus)
            yield "inventory", f"<EXTNInventoryList><EXTNInventoryItemList>{rows}</EXTNInventoryItemList></EXTNInventoryList>", skus
        else:
            rows = "".join(f'<EXTNPriceItem ChannelID="{ch}" EAN="E-{s}" ItemID="{s}" MRP="5000.00" SellingPrice="{rng.randint(100, 4999)}.00"/>'
                           for ch in CHANNELS for s in skus)
            yield "pricing", f"<EXTNPriceList><EXTNPriceItemList>{rows}</EXTNPriceItemList></EXTNPriceList>", skus


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
        updates = {"inventory": Counter(), "pricing": Counter()}
        for operation, body, skus in messages():
            stack.put(operation, body.encode())
            updates[operation].update(skus)
        print(f"marketplaces benchmark: {MESSAGES} messages, {MESSAGES * ITEMS} updates per channel over "
              f"{len(SKUS)} SKUs; quotas x{SCALE:g}")
        # Ingest: the bridge and the OMS worker record the desired state.
        stack.add_worker("oms,notifications", concurrency=2)
        started = time.monotonic()
        stack.start_bridge()
        wait_for(lambda: stack.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'") == MESSAGES, 600,
                 "every message processed", interval=0.5)
        ingest_s = time.monotonic() - started
        # Push: the marketplace workers.
        started = time.monotonic()
        push_started_db = stack.scalar("SELECT extract(epoch FROM now())")
        stack.add_worker("marketplace.amazon", concurrency=2)
        stack.add_worker("marketplace.flipkart", concurrency=2)
        wait_for(lambda: stack.scalar("SELECT count(*) FROM listings WHERE dirty") == 0, 900, "everything pushed", interval=0.5)
        push_s = time.monotonic() - started
        calls = stack.calls()
        result = {}
        for channel_id, (marketplace, _, _) in CHANNELS.items():
            mine = [c for c in calls if c["channel"] == channel_id and c["operation"] in QUOTAS[marketplace]]
            by_op = Counter(c["operation"] for c in mine if c["status"] != 429)
            inventory_skus, price_skus = len(updates["inventory"]), len(updates["pricing"])
            if marketplace == "amazon":
                min_by_op = {"patchListingsItem": len(set(updates["inventory"]) | set(updates["pricing"]))}
            else:
                min_by_op = {"updateInventory": math.ceil(inventory_skus / 10), "updatePrice": math.ceil(price_skus / 10)}
            rate = {op: r * SCALE for op, r in QUOTAS[marketplace].items()}
            pushes = stack.scalar("SELECT count(*) FROM events WHERE channel_id = :c AND name LIKE '%/succeeded'", c=channel_id)
            pushed_fields = stack.scalar(
                "SELECT coalesce(sum(jsonb_array_length(payload->'items')), 0) FROM events "
                "WHERE channel_id = :c AND name IN ('inventory/succeeded', 'pricing/succeeded')", c=channel_id)
            received = sum(updates["inventory"].values()) + sum(updates["pricing"].values())
            last = stack.scalar("SELECT extract(epoch FROM max(created_at)) FROM events WHERE channel_id = :c "
                                "AND name IN ('inventory/succeeded', 'pricing/succeeded')", c=channel_id)
            result[marketplace] = {
                "calls": sum(by_op.values()),
                "min_calls": sum(min_by_op.values()),
                # Both channels' workers start together; each channel's time is to its last push.
                "wall_s": round(float(last) - float(push_started_db), 2),
                "min_wall_s": round(max(min_by_op[op] / rate[op] for op in min_by_op), 2),
                "coalesced": received - int(pushed_fields),
                "stale_pushes": 0,  # a push never carries an older value: see test_latest_value_wins
                "http_429": sum(1 for c in mine if c["status"] == 429),
                # Look-ups (Flipkart FSNs, Amazon product types), cached after the first: not pushes.
                "lookups": sum(1 for c in calls if c["channel"] == channel_id and c["operation"] not in QUOTAS[marketplace]
                               and c["operation"] not in ("lwaToken", "token")),
                "outcome_events": pushes,
            }
        result["ingest_s"] = round(ingest_s, 2)
        result["push_s"] = round(push_s, 2)
        result["quota_scale"] = SCALE
    finally:
        stack.stop()
        services.delete_queues(services.TEST_AMQP_URL, [*settings.oms_queues.values(), settings.queue_backout])
        redis.Redis.from_url(settings.redis_url).flushdb()
    print(f"  ingest (bridge + parsing into desired state): {result['ingest_s']:.1f}s")
    print(f"  {'marketplace':<10} {'calls':>6} {'min':>6} {'ratio':>6} {'wall s':>7} {'min s':>7} {'ratio':>6} {'coalesced':>9} {'429s':>5} {'look-ups':>8}")
    for marketplace in ("amazon", "flipkart"):
        r = result[marketplace]
        print(f"  {marketplace:<10} {r['calls']:>6} {r['min_calls']:>6} {r['calls'] / r['min_calls']:>6.2f} "
              f"{r['wall_s']:>7.1f} {r['min_wall_s']:>7.1f} {r['wall_s'] / r['min_wall_s']:>6.2f} {r['coalesced']:>9} {r['http_429']:>5} {r['lookups']:>8}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {OUT}")


if __name__ == "__main__":
    main()
