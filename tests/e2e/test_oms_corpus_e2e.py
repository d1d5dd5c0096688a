"""The whole hostile-input corpus (tests/corpus/oms/manifest.toml) on the OMS queues of a real stack
(bridge, worker, sandbox processes): nothing crashes, the bridge keeps consuming, and each message
gets its expected event."""

from __future__ import annotations

import hashlib
import time

import pytest

from tests.support.corpus import messages
from tests.support.processes import wait_for
from wheel.services.oms_messages import OMS_EVENT_NAMES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GOOD = (b'<EXTNChannelList><EXTNChannelItemList><EXTNChannelItem ChannelID="UA" EAN="EAN_GOOD" ItemID="SKU-GOOD" '
        b'RangeFlag="Y"/></EXTNChannelItemList></EXTNChannelList>')


@pytest.fixture
def stack(stack_factory):
    stack = stack_factory({"UA": {"marketplace": "tatacliq", "token": "token-ua"}})
    stack.add_channel("UA", "token-ua")
    stack.start_sandbox()
    stack.add_worker()
    stack.start_bridge()
    return stack


def test_the_whole_corpus_through_bridge_and_worker(stack):
    corpus = messages()
    started = time.monotonic()
    ids = {message.name: stack.put(message.queue, message.body()) for message in corpus}
    good_id = stack.put("ranging", GOOD)

    def settled() -> bool:
        return stack.scalar("SELECT count(*) FROM inbox WHERE status <> 'received'") == len(corpus) + 1

    wait_for(settled, 90, "every corpus message to be processed or set aside")
    # The good SKU goes in a call with the corpus's accepted UA items, 500 a call (10,000 of them).
    wait_for(lambda: any({"ean": "EAN_GOOD", "sku": "SKU-GOOD"} in c["body"] for c in stack.calls("UA")), 60,
             "the good message sent after the corpus to reach the marketplace")
    elapsed = time.monotonic() - started

    wrong = []
    for message in corpus:
        row = stack.scalar("SELECT json_build_object('id', id, 'status', status, 'sha', encode(sha256(body), 'hex')) "
                           "FROM inbox WHERE transport_message_id = :m", m=ids[message.name])
        body = message.body()
        if row["sha"] != hashlib.sha256(body).hexdigest():
            wrong.append(f"{message.name}: raw message not kept whole")
        if row["status"] != message.status:
            wrong.append(f"{message.name}: {row['status']}, not {message.status}")
        [oms_event] = stack.events(OMS_EVENT_NAMES[message.queue], inbox_id=row["id"])
        system = [e for e in stack.events(inbox_id=row["id"]) if e.type == "system"]
        if message.accepted:
            if system:
                wrong.append(f"{message.name}: accepted, yet {[(e.name, e.payload.get('error')) for e in system]}")
            continue
        found = [e for e in system if e.name == message.event and e.parent_id == oms_event.id]
        if not found or message.error not in found[0].payload.get("error", ""):
            wrong.append(f"{message.name}: expected {message.event} with {message.error!r}, got "
                         f"{[(e.name, e.payload.get('error', '')[:200]) for e in system]}")
    assert wrong == [], "\n".join(wrong)
    assert stack.scalar("SELECT count(*) FROM inbox WHERE transport_message_id = :m AND status = 'processed'",
                        m=good_id) == 1
    # Nothing from /etc/passwd anywhere; no task died on a message (guard.py would log system/task-failed).
    assert stack.scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%root:x:0:0%'") == 0
    assert stack.events("system/task-failed") == [] and stack.events("system/processing-failed") == []
    assert stack.events("system/message-backed-out") == []
    assert stack.bridge.alive() and all(worker.alive() for worker in stack.workers)
    assert elapsed < 60, f"the corpus took {elapsed:.0f}s"
