"""Marketplace pushes: API calls and wall time against what the batch limits and quotas allow.

20,000 inventory and price updates (2,000 OMS messages of 10 items) over 2,000 SKUs, for one
Amazon and one Flipkart channel, go through the real bridge into the desired state; then the
marketplace workers push it. Quotas are the documented ones (Flipkart's, unpublished, are our
assumed 5/s per operation) scaled up by one factor on both sides, to keep the run short: the
ratios are what count. Amazon runs in PATCH mode here (its channel's `bulk_threshold` keeps it
there): one PATCH per SKU for its stock and another for its price (mapping.plan sends them apart,
so a refused price never fails the stock; the Listings Items API would take both in one PATCH, so
the API's own minimum is one call per SKU, which the report gives too).

Then a second run over the same SKUs (BENCH_WARM_MESSAGES messages, 1000 by default), pushed by
fresh worker processes: what a push looks up (Flipkart's FSNs and locations, Amazon's product types)
is kept in Postgres, so it makes no look-ups. Both runs report look-up calls, and per SKU pushed.

Then repricing: BENCH_REPRICE_SKUS (20,000) SKUs repriced on one more Amazon channel, BR, whose
sandbox feeds take BENCH_FEED_PROCESSING_S (30 s) from createFeed to DONE. Wheel chooses PATCHes
or a feed by estimated finish time (no feed of BR's observed yet: the 300 s assumed); the report
gives the PATCH-only estimate (calls at the channel's PATCH rate), the feed path's measured time
to the last verdict, Amazon's time to DONE as recorded, and the choice made with its estimates.
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
from sqlalchemy import select

from tests.support import services
from tests.support.processes import wait_for
from tests.support.stack import Stack
from wheel.db.models import Event
from wheel.marketplaces.amazon import mapping
from wheel.marketplaces.amazon.adapter import QUOTAS as AMAZON_QUOTAS
from wheel.marketplaces.base import Workload
from wheel.quota import effective_quotas

SCALE = float(os.environ.get("BENCH_QUOTA_SCALE", "5"))
# Flipkart's 400 calls take 8 s at x5, less than a sandbox answer's delay on a loaded machine adds
# up to: at its assumed quota as it is (x1, 40 s), the run is bound by the quota, as in production.
FLIPKART_SCALE = float(os.environ.get("BENCH_FLIPKART_QUOTA_SCALE", "1"))
SCALES = {"amazon": SCALE, "flipkart": FLIPKART_SCALE}
SKUS = [f"SKU-{n:04d}" for n in range(2000)]
MESSAGES, ITEMS = 2000, 10
# The second run, over the same SKUs with fresh workers: nothing is looked up again.
WARM_MESSAGES = int(os.environ.get("BENCH_WARM_MESSAGES", "1000"))
OUT = Path("build/bench/marketplaces.json")
REPRICE_SKUS = int(os.environ.get("BENCH_REPRICE_SKUS", "20000"))
REPRICE_PER_MESSAGE = 100
FEED_PROCESSING_S = float(os.environ.get("BENCH_FEED_PROCESSING_S", "30"))
REPRICE = ("BR", json.dumps({"client_id": "lwa-br", "client_secret": "s-br", "refresh_token": "r-br"}),
           {"marketplace": "amazon", "client_id": "lwa-br", "client_secret": "s-br", "token": "r-br",
            "quota_scale": SCALE, "feed_processing_s": FEED_PROCESSING_S})
QUOTAS = {  # documented (Flipkart: assumed) rate per second, per API operation
    "amazon": {"patchListingsItem": 5.0},
    "flipkart": {"updateInventory": 5.0, "updatePrice": 5.0},
}
CHANNELS = {
    "BZ": ("amazon", json.dumps({"client_id": "lwa-bz", "client_secret": "s-bz", "refresh_token": "r-bz"}),
           {"marketplace": "amazon", "client_id": "lwa-bz", "client_secret": "s-bz", "token": "r-bz", "quota_scale": SCALE}),
    "BF": ("flipkart", json.dumps({"app_id": "app-bf", "app_secret": "s-bf"}),
           {"marketplace": "flipkart", "client_id": "app-bf", "token": "s-bf", "quota_scale": FLIPKART_SCALE}),
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
    # The marketplace worker as the Procfile runs it: one thread-pool worker over the queues.
    pushers = [stack.add_worker("marketplace.amazon,marketplace.flipkart", concurrency=6, pool="threads")]
    # From the worker ready (its start-up is not the push's; a worker runs all day).
    push_started_db = stack.scalar("SELECT extract(epoch FROM now())")
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
            # A SKU's stock and its price are two PATCHes (mapping.plan); each SKU's changes
            # coalesce into at most one of each.
            min_by_op = {"patchListingsItem": inventory_skus + price_skus}
        else:
            min_by_op = {"updateInventory": math.ceil(inventory_skus / 10), "updatePrice": math.ceil(price_skus / 10)}
        rate = {op: r * SCALES[marketplace] for op, r in QUOTAS[marketplace].items()}
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
            # What the API itself would allow: Amazon one PATCH per SKU with both attributes (we
            # split them); Flipkart the same as min_calls.
            "api_min_calls": pushed_skus if marketplace == "amazon" else sum(min_by_op.values()),
            # From the worker ready to the channel's last push.
            "wall_s": round(float(last) - float(push_started_db), 2),
            # The same, from the channel's first answered request.
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


def reprice(stack: Stack, processed_before: int) -> dict:
    """Reprice REPRICE_SKUS SKUs on channel BR and push them with a fresh Amazon worker: the choice
    made, its estimates, and the time to the last verdict."""
    channel_id = REPRICE[0]
    skus = [f"R-{n:05d}" for n in range(REPRICE_SKUS)]
    rng = random.Random(13)
    stack.reconnect()
    count = 0
    for start in range(0, len(skus), REPRICE_PER_MESSAGE):
        rows = "".join(f'<EXTNPriceItem ChannelID="{channel_id}" EAN="E-{s}" ItemID="{s}" MRP="5000.00" '
                       f'SellingPrice="{rng.randint(100, 4999)}.00"/>' for s in skus[start:start + REPRICE_PER_MESSAGE])
        stack.put("pricing", f"<EXTNPriceList><EXTNPriceItemList>{rows}</EXTNPriceItemList></EXTNPriceList>".encode())
        count += 1
    wait_for(lambda: stack.scalar("SELECT count(*) FROM inbox WHERE status = 'processed'") == processed_before + count,
             900, "every repricing message processed", interval=0.5)
    calls_before = len(stack.calls())
    events_before = stack.scalar("SELECT coalesce(max(id), 0) FROM events")
    started = time.monotonic()
    push_started_db = float(stack.scalar("SELECT extract(epoch FROM now())"))
    pusher = stack.add_worker("marketplace.amazon", concurrency=6, pool="threads")
    wait_for(lambda: stack.scalar("SELECT count(*) FROM listings WHERE channel_id = :c AND (dirty OR claimed_by IS NOT NULL)",
                                  c=channel_id) == 0, 900, "every SKU repriced", interval=0.5)
    push_s = time.monotonic() - started
    pusher.stop()
    mine = "channel_id = :c AND id > :e"
    last = float(stack.scalar(f"SELECT extract(epoch FROM max(created_at)) FROM events WHERE {mine} "
                              "AND name = 'pricing/succeeded'", c=channel_id, e=events_before))
    repriced = stack.scalar(f"SELECT coalesce(sum(jsonb_array_length(payload->'items')), 0) FROM events "
                            f"WHERE {mine} AND name = 'pricing/succeeded'", c=channel_id, e=events_before)
    with stack.sessions() as session:
        chosen = [e.payload for e in session.execute(
            select(Event).where(Event.channel_id == channel_id, Event.id > events_before,
                                Event.name == "push/path-chosen").order_by(Event.id)).scalars()]
    observed = stack.scalar("SELECT processing_s FROM submission_timings WHERE channel_id = :c", c=channel_id)
    calls = [c for c in stack.calls()[calls_before:] if c["channel"] == channel_id]
    by_op = Counter(c["operation"] for c in calls if c["status"] != 429)
    patch_rate = QUOTAS["amazon"]["patchListingsItem"] * SCALE
    patch_estimate_s = REPRICE_SKUS / patch_rate  # one price PATCH per SKU
    first = chosen[0] if chosen else {}
    # With the time to DONE now observed, the same batch's choice (the pure function the push uses).
    rechosen = mapping.choose_path(Workload(REPRICE_SKUS, 0, REPRICE_SKUS), effective_quotas(AMAZON_QUOTAS, SCALE),
                                   feed_processing_s=observed, observed=True) if observed is not None else None
    return {
        "skus": REPRICE_SKUS, "repriced": int(repriced), "sandbox_feed_processing_s": FEED_PROCESSING_S,
        "batches": len(chosen), "choice": first.get("path"), "choices": dict(Counter(c["path"] for c in chosen)),
        "choice_estimates": first,
        "patch_only_min_calls": REPRICE_SKUS, "patch_only_estimate_s": round(patch_estimate_s, 1),
        "wall_s": round(last - push_started_db, 2), "push_s": round(push_s, 2),
        "wall_from_first_request_s": round(last - min((c["at"] for c in calls), default=push_started_db), 2),
        "observed_feed_processing_s": observed,
        "choice_with_observed_time": None if rechosen is None else rechosen.payload(),
        "calls_by_operation": dict(by_op), "http_429": sum(1 for c in calls if c["status"] == 429),
    }


def main() -> None:
    # A database and Redis database of the benchmark's own (WHEEL_BENCH_* when several people share the services).
    database_url = os.environ.get("WHEEL_BENCH_DATABASE_URL") or services.TEST_DATABASE_URL.rsplit("/", 1)[0] + "/wheel_bench"
    services.recreate_database(database_url)
    settings = services.test_settings(database_url=database_url,
                                      redis_url=os.environ.get("WHEEL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
                                      push_lease_s=60, visibility_timeout_s=300, sweeper_deadline_s=60,
                                      # Feeds are polled sooner, as the quotas are scaled up (defaults 15 s and 120 s).
                                      feed_first_poll_s=3.0, feed_max_poll_s=10.0)
    redis.Redis.from_url(settings.redis_url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="wheel-bench-"))
    stack = Stack(settings, tmp, {**{ch: behaviour for ch, (_, _, behaviour) in CHANNELS.items()},
                                  REPRICE[0]: REPRICE[2]})
    try:
        for channel_id, (marketplace, secret, _) in CHANNELS.items():
            options = {"bulk_threshold": 10**9} if marketplace == "amazon" else None
            stack.add_channel(channel_id, secret, marketplace=marketplace, quota_scale=SCALES[marketplace],
                              **({"options": {"seller_id": channel_id, "bulk_threshold": 10**9,
                                              "lwa_url": f"{stack.sandbox_url}/amazon/auth/o2/token"}} if options else {}))
        # BR: no bulk_threshold, so its pushes choose between PATCHes and a feed.
        stack.add_channel(REPRICE[0], REPRICE[1], marketplace="amazon", quota_scale=SCALE)
        stack.start_sandbox()
        print(f"marketplaces benchmark: {MESSAGES} messages, {MESSAGES * ITEMS} updates per channel over "
              f"{len(SKUS)} SKUs; quotas x{SCALE:g} (Flipkart x{FLIPKART_SCALE:g}); then {WARM_MESSAGES} more over the same SKUs (look-ups cached)")
        # Ingest: the bridge and the OMS worker record the desired state.
        stack.add_worker("oms,notifications", concurrency=2)
        stack.start_bridge()
        result = {"quota_scale": SCALE, "quota_scales": SCALES}
        for name, count, seed in (("first", MESSAGES, 11), ("second", WARM_MESSAGES, 12)):
            result[name] = run(stack, count, seed, MESSAGES if name == "second" else 0)
            report(name, result[name])
        # The first run's figures stay where they were, for comparison with earlier runs.
        result.update({k: result["first"][k] for k in ("amazon", "flipkart", "ingest_s", "push_s")})
        result["repricing"] = reprice(stack, MESSAGES + WARM_MESSAGES)
        report_repricing(result["repricing"])
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
    print(f"  {'marketplace':<10} {'calls':>6} {'min':>6} {'ratio':>6} {'API min':>7} {'wall s':>7} {'min s':>7} {'ratio':>6} "
          f"{'coalesced':>9} {'429s':>5} {'look-ups':>8} {'per SKU':>7} {'from 1st request s':>18} {'ratio':>6}")
    for marketplace in ("amazon", "flipkart"):
        m = r[marketplace]
        print(f"  {marketplace:<10} {m['calls']:>6} {m['min_calls']:>6} {m['calls'] / m['min_calls']:>6.2f} "
              f"{m['api_min_calls']:>7} "
              f"{m['wall_s']:>7.1f} {m['min_wall_s']:>7.1f} {m['wall_s'] / m['min_wall_s']:>6.2f} "
              f"{m['coalesced']:>9} {m['http_429']:>5} {m['lookups']:>8} {m['lookups_per_sku']:>7.3f} "
              f"{m['wall_from_first_request_s']:>18.1f} {m['wall_from_first_request_s'] / m['min_wall_s']:>6.2f}",
              flush=True)



def report_repricing(r: dict) -> None:
    c = r["choice_estimates"]
    print(f"  repricing: {r['skus']} SKUs on one Amazon channel, sandbox feeds take {r['sandbox_feed_processing_s']:g} s; "
          f"{r['repriced']} repriced in {r['batches']} batch(es), paths {r['choices']}")
    print(f"    choice: {r['choice']} ({c.get('reason')}): PATCH estimate {c.get('patch_s')} s "
          f"({c.get('patch_calls')} calls at {c.get('patch_rate_per_s')}/s) vs feed estimate {c.get('feed_s')} s "
          f"(token wait {c.get('feed_token_wait_s')} s + processing {c.get('feed_processing_s')} s, "
          f"observed: {c.get('feed_processing_observed')})")
    print(f"    PATCH-only: {r['patch_only_min_calls']} calls, at least {r['patch_only_estimate_s']:.1f} s; "
          f"taken path: {r['wall_s']:.1f} s to the last verdict ({r['wall_from_first_request_s']:.1f} s from the first "
          f"request); ratio PATCH-only / taken {r['patch_only_estimate_s'] / r['wall_s']:.2f}")
    again = r["choice_with_observed_time"] or {}
    print(f"    time to DONE recorded: {r['observed_feed_processing_s']} s; the same batch now: {again.get('path')} "
          f"(feed {again.get('feed_s')} s vs PATCH {again.get('patch_s')} s); calls {r['calls_by_operation']}, "
          f"429s {r['http_429']}", flush=True)


if __name__ == "__main__":
    main()
