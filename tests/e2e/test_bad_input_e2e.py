"""Hostile and poison messages through the real bridge: each is kept, explained, and consuming goes on."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from pydantic import SecretStr

from bridge.transports.amqp import AmqpTransport
from tests.e2e.test_ranging_e2e import doc, item
from tests.support.private import PrivateRabbitMQ
from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e]

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE EXTNChannelList [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<EXTNChannelList><EXTNChannelItemList>
<EXTNChannelItem ChannelID="UA" EAN="&xxe;" ItemID="SKU1" RangeFlag="Y"/>
</EXTNChannelItemList></EXTNChannelList>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<EXTNChannelList><EXTNChannelItemList>
<EXTNChannelItem ChannelID="UA" EAN="&lol9;" ItemID="SKU1" RangeFlag="Y"/>
</EXTNChannelItemList></EXTNChannelList>"""

# 20 MB: a valid document, only far too big.
HUGE = doc([item("UA", f"EAN_{n}", f"SKU{n}") for n in range(260_000)])
# Declared UTF-8, but \xff\xfe is not UTF-8.
BAD_ENCODING = b'<?xml version="1.0" encoding="UTF-8"?><EXTNChannelList><EXTNChannelItemList><EXTNChannelItem ChannelID="UA" EAN="\xff\xfe" ItemID="SKU1" RangeFlag="Y"/></EXTNChannelItemList></EXTNChannelList>'


@pytest.fixture
def stack(stack_factory):
    stack = stack_factory({"UA": {"marketplace": "tatacliq", "token": "token-ua"}}, bridge_max_attempts=3)
    stack.add_channel("UA", "token-ua")
    stack.start_sandbox()
    stack.add_worker()
    stack.start_bridge()
    return stack


def test_hostile_messages_are_kept_explained_and_do_not_stop_the_bridge(stack):
    assert len(HUGE) > 20 * 1024 * 1024
    cases = {
        "xxe": (XXE, "DOCTYPE"),
        "billion-laughs": (BILLION_LAUGHS, "DOCTYPE"),
        "huge": (HUGE, "over the 10,485,760-byte limit"),
        "bad-encoding": (BAD_ENCODING, "Invalid bytes in character encoding"),
    }
    ids = {name: stack.put("ranging", body) for name, (body, _) in cases.items()}
    # A good message after them: the bridge and the workers are still going.
    stack.put("ranging", doc([item("UA", "EAN_1", "SKU1")]))

    wait_for(lambda: len(stack.events("system/parsing-failed")) == 4, 60, "four parsing failures")
    wait_for(lambda: stack.events("ranging/succeeded"), 20, "the good message to go through")
    for name, (body, expected) in cases.items():
        inbox_id, kept = stack.scalar(
            "SELECT array[id::text, encode(sha256(body), 'hex')] FROM inbox WHERE transport_message_id = :m", m=ids[name]
        )
        assert kept == __import__("hashlib").sha256(body).hexdigest(), f"{name}: raw message not kept whole"
        [oms_event] = stack.events("oms/items-ranged", inbox_id=int(inbox_id))
        [failure] = stack.events("system/parsing-failed", parent_id=oms_event.id)
        assert expected in failure.payload["error"], (name, failure.payload["error"])
    # Nothing from /etc/passwd anywhere, and no expansion reached the marketplace.
    assert stack.scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%root:%'") == 0
    assert [c["body"] for c in stack.calls()] == [[{"ean": "EAN_1", "sku": "SKU1"}]]
    assert stack.bridge.alive()


def test_a_message_that_cannot_be_stored_goes_to_the_backout_queue(stack):
    # Postgres text cannot hold a NUL, so this message id makes every attempt to store it fail.
    poison_id = "poison\x00id"
    stack.put("ranging", b"<EXTNChannelList/>", message_id=poison_id)
    stack.put("ranging", doc([item("UA", "EAN_1", "SKU1")]))

    [event] = wait_for(lambda: stack.events("system/message-backed-out"), 30, "the backout event")
    assert event.level == "error" and event.payload["attempts"] == 3
    assert event.payload["queue"] == stack.settings.queue_ranging
    assert "NUL" in event.payload["error"] and stack.settings.queue_backout in event.payload["error"]
    transport = AmqpTransport(stack.settings.oms_url.get_secret_value())
    try:
        moved = transport.get_one(stack.settings.queue_backout, wait_s=5)
    finally:
        transport.close()
    assert moved is not None and moved.body == b"<EXTNChannelList/>" and moved.message_id == poison_id
    assert moved.headers["wheel-source-queue"] == stack.settings.queue_ranging
    wait_for(lambda: stack.events("ranging/succeeded"), 10, "the next message to go through")
    assert stack.bridge.alive()


def test_bridge_reconnects_when_the_broker_drops_it(stack_factory, tmp_path):
    # A broker of the test's own: closing every connection on the shared one would cut the other
    # tests `make test` runs alongside.
    broker = PrivateRabbitMQ(tmp_path)
    broker.start()
    try:
        stack = stack_factory({"UA": {"marketplace": "tatacliq", "token": "token-ua"}}, bridge_max_attempts=3,
                              oms_url=SecretStr(broker.url()))
        stack.add_channel("UA", "token-ua")
        stack.start_sandbox()
        stack.add_worker()
        stack.start_bridge()
        reconnects_after_the_broker_drops_it(stack, broker)
    finally:
        broker.destroy()


def reconnects_after_the_broker_drops_it(stack, broker):
    stack.put("ranging", doc([item("UA", "EAN_1", "SKU1")]))
    wait_for(lambda: stack.events("ranging/succeeded"), 10, "the first push")
    # The broker closes every client connection, as on a broker restart or a network cut.
    subprocess.run([str(broker.BIN / "rabbitmqctl"), "-n", broker.node, "close_all_connections",
                    "test: broker went away"], check=True, capture_output=True, env={**os.environ, **broker.env})
    wait_for(lambda: "reconnecting" in stack.bridge.output(), 15, "the bridge to notice")
    stack._transport = None  # ours was closed too
    stack.put("ranging", doc([item("UA", "EAN_2", "SKU2")]), message_id=uuid.uuid4().hex)
    wait_for(lambda: len(stack.events("ranging/succeeded")) == 2, 30, "a push after the reconnect")
    assert stack.bridge.alive()
