"""Ranging, end to end, through real processes: the CLI, the bridge, Celery workers, the sandbox."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.support.processes import wait_for, wheelctl

pytestmark = [pytest.mark.e2e]

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "ranging.xml"
SANDBOX = {
    "UA": {"marketplace": "tatacliq", "token": "token-ua"},
    "UB": {"marketplace": "tatacliq", "token": "token-ub", "fail_status": 500},
}


@pytest.fixture
def stack(stack_factory):
    stack = stack_factory(SANDBOX)
    stack.add_channel("UA", "token-ua", retry_delays_s=[0.3, 0.6, 1.2])
    stack.add_channel("UB", "token-ub", retry_delays_s=[0.3, 0.6, 1.2])
    stack.start_sandbox()
    stack.add_worker()
    stack.start_bridge()
    return stack


def item(channel, ean, sku, flag="Y"):
    return f'<EXTNChannelItem ChannelID="{channel}" EAN="{ean}" ItemID="{sku}" RangeFlag="{flag}"/>'


def doc(*lists):
    return ("<EXTNChannelList>" + "".join(f"<EXTNChannelItemList>{''.join(items)}</EXTNChannelItemList>" for items in lists)
            + "</EXTNChannelList>").encode()


def test_sample_message_ranges_on_ua_and_fails_loudly_on_ub(stack):
    # The OMS's sample, put with the CLI as an operator would.
    started = time.monotonic()
    subprocess.run(wheelctl("oms", "put", "ranging", str(SAMPLE)), env={**__import__("os").environ, **stack.env},
                   check=True, capture_output=True)

    # Seconds on a quiet machine (the push waits only the 0.3 s coalescing window); the bound is
    # loose because `make test` runs two end-to-end tests at once on two cores (19 s was seen with
    # the machine's load at 20).
    succeeded = wait_for(lambda: stack.events("ranging/succeeded"), 30, "ranging/succeeded for UA")
    assert time.monotonic() - started < 30
    [oms_event] = stack.events("oms/items-ranged")
    [ua] = succeeded
    assert ua.channel_id == "UA" and ua.parent_id == oms_event.id
    assert ua.payload["items"] == [{"sku": "SKU1", "ean": "EAN_1"}, {"sku": "SKU2", "ean": "EAN_2"}]
    ua_calls = stack.calls("UA")
    assert len(ua_calls) == 1 and ua_calls[0]["body"] == [{"ean": "EAN_1", "sku": "SKU1"}, {"ean": "EAN_2", "sku": "SKU2"}]
    state = stack.calls and __import__("requests").get(f"{stack.sandbox_url}/_sandbox/state/UA", timeout=5).json()
    assert state["listings"] == {"SKU1": {"ean": "EAN_1", "ranged": True}, "SKU2": {"ean": "EAN_2", "ranged": True}}

    # UB: HTTP 500, retried with backoff (three retries), then one failure event naming it.
    [failed] = wait_for(lambda: stack.events("system/processing-failed"), 20, "UB's failure event")
    assert failed.channel_id == "UB" and failed.parent_id == oms_event.id and failed.level == "error"
    assert "HTTP 500" in failed.payload["error"] and "4 attempts" in failed.payload["error"]
    retries = stack.events("ranging/retrying", channel_id="UB")
    assert len(retries) == 3 and all(r.parent_id == oms_event.id for r in retries)
    ub_calls = stack.calls("UB")
    assert [c["status"] for c in ub_calls] == [500] * 4
    gaps = [b["at"] - a["at"] for a, b in zip(ub_calls, ub_calls[1:])]
    assert gaps[0] >= 0.2 and gaps[2] > gaps[0], f"retries should back off: {gaps}"
    assert not stack.events("ranging/succeeded", channel_id="UB")


INVALID = {
    "empty-list": (b"<EXTNChannelList></EXTNChannelList>", "Missing child element"),
    "blank-channel": (doc([item(" ", "EAN_1", "SKU1")]), "ChannelID"),
    "wrong-flag": (doc([item("UA", "EAN_1", "SKU1", flag="N")]), "RangeFlag"),
    "blank-ean": (doc([item("UA", "", "SKU1")]), "EAN"),
}


def test_invalid_messages_give_parsing_failed_under_their_oms_event(stack):
    ids = {name: stack.put("ranging", body) for name, (body, _) in INVALID.items()}
    wait_for(lambda: len(stack.events("system/parsing-failed")) == len(INVALID), 15, "a parsing failure for each")
    for name, (_, expected) in INVALID.items():
        inbox_id = stack.scalar("SELECT id FROM inbox WHERE transport_message_id = :m", m=ids[name])
        [oms_event] = stack.events("oms/items-ranged", inbox_id=inbox_id)
        [failure] = stack.events("system/parsing-failed", parent_id=oms_event.id)
        assert expected in failure.payload["error"], (name, failure.payload["error"])
        assert stack.scalar("SELECT status FROM inbox WHERE id = :id", id=inbox_id) == "failed"
    assert stack.calls() == []


def test_unknown_channel_gives_channel_not_found_and_the_rest_goes_through(stack):
    stack.put("ranging", doc([item("UC", "EAN_9", "SKU9")], [item("UA", "EAN_1", "SKU1")]))
    [missing] = wait_for(lambda: stack.events("system/channel-not-found"), 10, "system/channel-not-found")
    [oms_event] = stack.events("oms/items-ranged")
    assert missing.channel_id == "UC" and missing.parent_id == oms_event.id
    assert missing.payload["items"] == [{"sku": "SKU9", "ean": "EAN_9"}]
    wait_for(lambda: stack.events("ranging/succeeded", channel_id="UA"), 10, "UA to succeed")
    assert {c["channel"] for c in stack.calls()} == {"UA"}


def test_redelivered_message_id_is_stored_and_processed_once(stack):
    body = doc([item("UA", "EAN_1", "SKU1")])
    stack.put("ranging", body, message_id="same-id")
    stack.put("ranging", body, message_id="same-id")
    wait_for(lambda: stack.events("ranging/succeeded"), 10, "the push")
    time.sleep(1.5)
    assert stack.scalar("SELECT count(*) FROM inbox") == 1
    assert len(stack.events("oms/items-ranged")) == 1
    assert len(stack.calls("UA")) == 1


def test_messages_without_an_id_that_repeat_a_body_are_new_messages(stack):
    # A price set back to an earlier value is a new message: the body alone never dedupes.
    body = doc([item("UA", "EAN_1", "SKU1")])
    stack.put("ranging", body, message_id="")
    stack.put("ranging", body, message_id="")
    # Two messages, each with its outcome: pushed twice, or the first superseded by the second.
    wait_for(lambda: len(stack.events("ranging/succeeded")) + len(stack.events("ranging/superseded")) == 2, 10,
             "an outcome for each message")
    assert stack.scalar("SELECT count(*) FROM inbox WHERE transport_message_id LIKE 'body-sha256:%'") == 2
    assert len(stack.events("oms/items-ranged")) == 2


def test_bridge_stops_cleanly_on_sigterm(stack):
    stack.put("ranging", doc([item("UA", "EAN_1", "SKU1")]))
    wait_for(lambda: stack.events("ranging/succeeded"), 10, "the push")
    assert stack.bridge.stop(timeout=15) == 0
    assert "bridge stopped" in stack.bridge.output()
