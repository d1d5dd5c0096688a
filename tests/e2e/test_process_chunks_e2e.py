"""The bridge sends one task per chunk of messages (WHEEL_PROCESS_CHUNK), and a message that fails
or kills its worker takes only itself down, never the rest of its chunk.

Real processes: the bridge, a Celery worker, the sandbox. A message is made to fail, or to hang
until the test kills the worker process running it, by a test-only trigger on the listings table
for one SKU (as tests/integration/test_bridge.py's `refuse_inbox` does for the inbox).
"""

from __future__ import annotations

import math
import os
import re
import signal
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.e2e.test_ranging_e2e import doc, item
from tests.support.processes import wait_for
from workers import queues

pytestmark = [pytest.mark.e2e]

CHUNK = 10


def start(stack_factory, **overrides):
    stack = stack_factory({"UA": {"marketplace": "tatacliq", "token": "token-ua"}}, process_chunk=CHUNK, **overrides)
    stack.add_channel("UA", "token-ua")
    stack.start_sandbox()
    return stack


def put_all(stack, skus: list[str]) -> list[str]:
    return [stack.put("ranging", doc([item("UA", f"EAN_{sku}", sku)])) for sku in skus]


def inbox(stack) -> list[tuple[int, str, str]]:
    """(id, status, SKU) of each message, in order."""
    with stack.engine.connect() as connection:
        return [(row.id, row.status, re.search(rb'ItemID="([^"]+)"', row.body).group(1).decode())
                for row in connection.execute(text("SELECT id, status, body FROM inbox ORDER BY id"))]


def ranged(stack) -> set[str]:
    with stack.engine.connect() as connection:
        return set(connection.execute(text("SELECT sku FROM listings WHERE ranged")).scalars())


def chunk_tasks(worker_output: str) -> list[int]:
    """The number of messages of each process_messages task the worker finished (Celery's line)."""
    pattern = re.escape(queues.PROCESS_MESSAGES) + r"\[[^\]]+\] succeeded in [\d.e-]+s: '(\d+) messages"
    return [int(n) for n in re.findall(pattern, worker_output)]


def settled(stack, count: int) -> dict[str, str] | None:
    """Status by SKU once all `count` messages are in the inbox and none is waiting (one read of the
    inbox: two could see fewer rows, all settled, then all of them)."""
    rows = inbox(stack)
    if len(rows) != count or any(status == "received" for _, status, _ in rows):
        return None
    return {sku: status for _, status, sku in rows}


def test_a_burst_goes_out_in_chunks_and_a_failing_message_fails_alone(stack_factory, listing_trigger):
    listing_trigger("BOOM", "RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = '22000';")
    stack = start(stack_factory)
    skus = [f"SKU{n}" for n in range(25)]
    skus[13] = "BOOM"
    put_all(stack, skus)  # before the bridge starts: it takes them in as few batches as it can
    stack.add_worker()
    stack.start_bridge()

    statuses = wait_for(lambda: settled(stack, 25), 60, "every message to be processed or set aside")
    assert statuses.pop("BOOM") == "failed"
    assert set(statuses.values()) == {"processed"}
    assert ranged(stack) == set(statuses)
    [failed] = stack.events("system/processing-failed")
    assert failed.level == "error" and failed.inbox_id == [i for i, _, sku in inbox(stack) if sku == "BOOM"][0]
    assert failed.payload["error"].startswith("DataError: (psycopg.errors.DataException) refused by a test trigger")
    wait_for(lambda: "ALERT :rotating_light: system/processing-failed" in stack.workers[0].output(), 30, "the alert")
    wait_for(lambda: len(stack.events("ranging/succeeded")) == 24, 60, "the good messages to be pushed")

    # One task per chunk of each batch the bridge took (a batch's rows share their acked_at).
    with stack.engine.connect() as connection:
        batches = list(connection.execute(text("SELECT count(*) FROM inbox GROUP BY acked_at")).scalars())
    tasks = wait_for(lambda: chunk_tasks(stack.workers[0].output()) if sum(chunk_tasks(stack.workers[0].output())) == 25
                     else None, 20, "every chunk task to finish")
    assert len(tasks) == sum(math.ceil(n / CHUNK) for n in batches) < 25
    assert max(tasks) <= CHUNK
    assert f"{queues.PROCESS_MESSAGE}[" not in stack.workers[0].output()


def pool_children(worker_pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == worker_pid:
                children.append(int(entry.name))
    return children


def sleeping_backend(stack, other_than: int | None = None) -> int | None:
    """The database session stuck on the poison message (not the one the test just ended)."""
    return stack.scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event = 'PgSleep' AND pid IS DISTINCT FROM :other LIMIT 1", other=other_than)


def test_a_message_that_kills_its_worker_is_set_aside_and_the_rest_of_its_chunk_goes_on(stack_factory, listing_trigger):
    listing_trigger("KILLER", "PERFORM pg_sleep(120);")
    stack = start(stack_factory, task_max_deliveries=2)
    skus = [f"SKU{n}" for n in range(12)]
    skus[4] = "KILLER"
    put_all(stack, skus)
    worker = stack.add_worker(concurrency=1)
    stack.start_bridge()

    # Each time the worker process is on the message, it dies (as the out-of-memory killer would
    # kill it), and its database session with it.
    backend = None
    for _ in range(stack.settings.task_max_deliveries):
        backend = wait_for(lambda previous=backend: sleeping_backend(stack, other_than=previous), 60,
                           "the worker to be on the poison message")
        for pid in pool_children(worker.pid):
            os.kill(pid, signal.SIGKILL)
        stack.scalar("SELECT pg_terminate_backend(:pid)", pid=backend)

    statuses = wait_for(lambda: settled(stack, len(skus)), 60, "every message to be processed or set aside")
    assert statuses.pop("KILLER") == "failed"
    assert set(statuses.values()) == {"processed"}
    assert ranged(stack) == set(statuses)
    [failed] = stack.events("system/processing-failed")
    assert f"started {stack.settings.task_max_deliveries} times" in failed.payload["error"]
    assert "its worker process died every time" in failed.payload["error"]
    assert sleeping_backend(stack) is None  # not run again
    assert worker.alive()
