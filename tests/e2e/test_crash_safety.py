"""Crash safety (docs/contracts.md, contracts 1 and 5), through real processes killed with SIGKILL.

1,000 ranging messages go through the bridge while the bridge is killed and restarted at least
five times, a worker at least twice, and a private Redis is restarted once with its data lost.
Every message must end with exactly one `oms` event and exactly one outcome per channel; the
sandbox may see a call twice only for a push a killed worker had in flight.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time

import pytest

from tests.e2e.test_ranging_e2e import doc, item
from tests.support.processes import Process, wait_for
from tests.support.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MESSAGES = 1000
CHANNELS = ("UA", "UD")


def process_group(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_nothing_lost_nothing_doubled_through_crashes(stack_factory, tmp_path):
    redis_port = free_port()
    redis = Process("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], {}, tmp_path).start()
    wait_for(lambda: "Ready to accept connections" in redis.output(), 10, "the private Redis")
    stack = stack_factory(
        {ch: {"marketplace": "tatacliq", "token": f"token-{ch}", "delay_s": 0.01} for ch in CHANNELS},
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        visibility_timeout_s=8, sweeper_deadline_s=4, sweeper_interval_s=1, push_lease_s=6,
        bridge_batch_size=50,
    )
    try:
        for ch in CHANNELS:
            stack.add_channel(ch, f"token-{ch}")
        stack.start_sandbox()
        workers = [stack.add_worker(concurrency=2), stack.add_worker(concurrency=2)]
        stack.start_beat()
        stack.start_bridge()

        # The OMS sends 1,000 messages over about 20 seconds.
        put_ids: list[str] = []

        def oms():
            for n in range(MESSAGES):
                put_ids.append(stack.put("ranging", doc([item(ch, f"EAN-{n}", f"SKU-{n}") for ch in CHANNELS])))
                time.sleep(0.02)

        sender = threading.Thread(target=oms)
        sender.start()

        in_flight: set[int] = set()
        bridge_kills = worker_kills = 0
        plan = ["bridge", "worker", "bridge", "redis", "bridge", "worker", "bridge", "bridge", "bridge"]
        for step in plan:
            time.sleep(2.0)
            if step == "bridge":
                stack.bridge.kill()
                bridge_kills += 1
                time.sleep(0.3)
                stack.bridge.start()
            elif step == "worker":
                victim = workers[worker_kills % len(workers)]
                pids = process_group(victim.pid)
                victim.kill()
                worker_kills += 1
                # What the killed worker had claimed and not finished: its in-flight pushes.
                with stack.engine.connect() as connection:
                    rows = connection.exec_driver_sql(
                        "SELECT channel_id, sku, claimed_by FROM listings WHERE claimed_by IS NOT NULL"
                    ).fetchall()
                in_flight |= {(r.channel_id, r.sku) for r in rows if int(r.claimed_by.rsplit(":", 1)[1]) in pids}
                stack.start_worker(victim)
            elif step == "redis":
                redis.kill()  # SIGKILL: everything queued in Redis is gone
                redis.start()
                wait_for(lambda: redis.output().count("Ready to accept connections") >= 2, 10, "Redis back")
        sender.join()
        assert len(put_ids) == MESSAGES and bridge_kills >= 5 and worker_kills >= 2

        expected = MESSAGES * len(CHANNELS)
        wait_for(lambda: stack.scalar("SELECT count(*) FROM events WHERE name = 'ranging/succeeded'") >= expected,
                 240, "every push to succeed", interval=1)
        time.sleep(3)  # anything still running that would double an outcome has had its chance

        # Every message stored once, with exactly one oms event.
        assert stack.scalar("SELECT count(*) FROM inbox") == MESSAGES
        assert stack.scalar("SELECT count(DISTINCT transport_message_id) FROM inbox WHERE transport_message_id = ANY(:ids)",
                            ids=put_ids) == MESSAGES
        assert stack.scalar("SELECT count(*) FROM events WHERE type = 'oms'") == MESSAGES
        assert stack.scalar("SELECT count(*) FROM (SELECT inbox_id FROM events WHERE type = 'oms' "
                            "GROUP BY inbox_id HAVING count(*) <> 1) x") == 0
        # Exactly one outcome per message and channel, and every one a success.
        outcomes = stack.scalar("SELECT count(*) FROM events WHERE name IN "
                                "('ranging/succeeded', 'ranging/failed', 'system/processing-failed')")
        assert outcomes == expected
        assert stack.scalar("SELECT count(*) FROM (SELECT inbox_id, channel_id FROM events WHERE name = "
                            "'ranging/succeeded' GROUP BY 1, 2 HAVING count(*) <> 1) x") == 0
        assert stack.scalar("SELECT count(*) FROM events WHERE level = 'error'") == 0

        # The sandbox saw every item, and a repeat only where a killed worker had the push in flight.
        calls = [c for c in stack.calls() if c["accepted"]]
        per_sku = collections.Counter((c["channel"], i["sku"]) for c in calls for i in c["body"])
        repeated = {key for key, n in per_sku.items() if n > 1}
        assert len(per_sku) == expected
        assert repeated <= in_flight, f"repeated calls for SKUs no killed worker had: {repeated - in_flight}"
        print(f"\ncrash test: {bridge_kills} bridge kills, {worker_kills} worker kills, 1 Redis restart; "
              f"{sum(per_sku.values())} SKUs pushed in {len(calls)} calls for {expected} items; {len(repeated)} repeated "
              f"(in flight at a worker kill: {len(in_flight)})")
    finally:
        stack.stop()
        redis.stop()
