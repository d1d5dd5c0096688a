"""Two bridges on the same OMS queues: one consumes, the other stands by and takes over when the
first is killed. A value's version is its arrival order in the inbox, so the inbox must keep the
queue's order through the takeover (RabbitMQ's single active consumer)."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from tests.support.processes import Process, wait_for, wheelctl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MESSAGES = 600


def consumers(queue: str) -> list[dict]:
    """The broker's consumers of the queue, with whether each is the active one (read-only)."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_consumers", "queue_name", "active", "activity_status",
                          "--formatter", "json"], capture_output=True, text=True, timeout=60, check=True).stdout
    return [c for c in json.loads(out or "[]") if c["queue_name"] == queue]


def stock(n: int) -> bytes:
    return (f'<EXTNInventoryList><EXTNInventoryItemList><EXTNInventoryItem ChannelID="UA" EAN="EAN-1" '
            f'ItemID="SKU-1" Quantity="{n}"/></EXTNInventoryItemList></EXTNInventoryList>').encode()


def test_a_second_bridge_stands_by_and_takes_over_in_queue_order(stack_factory):
    stack = stack_factory({}, bridge_batch_size=20)
    queue = stack.settings.queue_inventory
    first = stack.start_bridge()
    second = Process("bridge-2", wheelctl("bridge"), stack.env, stack.tmp).start()
    try:
        wait_for(lambda: "bridge consuming" in second.output() or not second.alive(), 30, "the second bridge")
        wait_for(lambda: len(consumers(queue)) == 2, 30, "both bridges to subscribe")
        assert sorted(c["active"] for c in consumers(queue)) == [False, True], "both bridges consume the queue"

        # The OMS sends stock 0, 1, 2, ... for one SKU: each message's place in the queue is its value.
        ids = [f"seq-{n:05d}" for n in range(MESSAGES)]

        def oms():
            for n, message_id in enumerate(ids):
                stack.put("inventory", stock(n), message_id=message_id)
                time.sleep(0.01)

        sender = threading.Thread(target=oms)
        sender.start()
        wait_for(lambda: stack.scalar("SELECT count(*) FROM inbox") >= MESSAGES // 4, 60, "the first bridge to store some")
        assert "bridge receiving messages" in first.output() and "bridge receiving messages" not in second.output()
        first.kill()  # SIGKILL: whatever it had in hand, stored or not, unacknowledged
        killed_at = time.monotonic()
        wait_for(lambda: "bridge receiving messages" in second.output(), 30, "the standby to take over")
        took_over_s = time.monotonic() - killed_at
        sender.join()
        wait_for(lambda: stack.scalar("SELECT count(*) FROM inbox") >= MESSAGES, 60, "every message to be stored")

        # Every message once, in the order the OMS sent them: versions follow the queue.
        stored = stack.scalar("SELECT array_agg(transport_message_id ORDER BY id) FROM inbox WHERE queue = :q", q=queue)
        assert stored == ids
        [active] = consumers(queue)
        assert active["active"]

        # The killed bridge, restarted, is now the standby.
        stack.bridge.start()
        wait_for(lambda: len(consumers(queue)) == 2, 30, "the restarted bridge to subscribe")
        assert sorted(c["active"] for c in consumers(queue)) == [False, True]
        print(f"\nstandby took over {took_over_s:.1f}s after the SIGKILL")
    finally:
        second.stop()
