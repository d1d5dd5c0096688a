"""Alerts end to end: real bridge, Celery worker and beat on the real services, Slack a stand-in
(tests/support/slack_standin.py) in this process that the worker posts to with slack-sdk.

Two lengths are shorter here than in production, so that `make test` stays fast:
WHEEL_TEST_ALERT_WINDOW_S (default 15) is the burst window (production: 60 s), and
WHEEL_TEST_SLACK_OUTAGE_S (default 20) is how long Slack is down (the outage the ops team asked
about lasts two minutes: run with WHEEL_TEST_SLACK_OUTAGE_S=120 for that).
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
from pydantic import SecretStr

from tests.support.processes import wait_for
from tests.support.slack_standin import SlackStandIn, count_of, fields, texts

pytestmark = [pytest.mark.e2e]

TOKEN = "xoxb-S3cret-e2e-7c6b"
WINDOW_S = float(os.environ.get("WHEEL_TEST_ALERT_WINDOW_S", "15"))
OUTAGE_S = float(os.environ.get("WHEEL_TEST_SLACK_OUTAGE_S", "20"))
SANDBOX = {"UB": {"marketplace": "tatacliq", "token": "token-ub", "fail_status": 500}}
UB_RANGING = (b'<EXTNChannelList><EXTNChannelItemList>'
              b'<EXTNChannelItem ChannelID="UB" EAN="EAN_3" ItemID="SKU3" RangeFlag="Y"/>'
              b'</EXTNChannelItemList></EXTNChannelList>')
INVALID = b"<EXTNChannelList></EXTNChannelList>"  # the schema wants at least one item list


@pytest.fixture
def slack():
    standin = SlackStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def start(stack_factory, slack):
    def make(**overrides):
        settings = dict(slack_token=SecretStr(TOKEN), slack_api_url=slack.api_url, slack_timeout_s=3,
                        alert_burst_window_s=WINDOW_S, alert_retry_max_s=4)
        stack = stack_factory(SANDBOX, **{**settings, **overrides})
        stack.add_channel("UB", "token-ub", retry_delays_s=[0.3, 0.6, 1.2])
        stack.start_sandbox()
        stack.add_worker()
        stack.start_beat()  # the sweeper: passes over the alerts outbox whenever alerts are due
        stack.start_bridge()
        return stack

    return make


def test_a_failed_ranging_on_ub_is_exactly_one_slack_message_with_its_fields(start, slack):
    stack = start()
    stack.put("ranging", UB_RANGING)
    [message] = wait_for(slack.messages, 30, "the alert at the Slack stand-in")
    [failed] = stack.events("system/processing-failed")
    [oms_event] = stack.events("oms/items-ranged")
    assert fields(message) == {"Channel Name": "Tata CLiQ", "Channel Id": "UB", "Event Id": str(failed.id),
                               "Parent Id": str(oms_event.id), "Count": "1", "SKUs": "SKU3"}
    shown = texts(message)
    headline = shown[2]  # after the notification's text and the attachment's fallback
    assert headline.startswith("*system/processing-failed on channel UB: ") and "HTTP 500" in headline
    assert "4 attempts" in headline
    payload = next(t for t in shown if t.startswith("*Payload*"))
    assert '"sku": "SKU3"' in payload and payload.endswith("```")
    assert shown[-1] == f"Shows or fixes the cause: `wheelctl events --parent {oms_event.id}`"
    assert message.body["attachments"][0]["color"] == "#d00000"
    assert message.authorization == f"Bearer {TOKEN}" and TOKEN not in message.raw
    # The retries were warnings: no message of their own, and nothing more comes.
    assert len(stack.events("ranging/retrying")) == 3
    time.sleep(4)
    assert len(slack.messages()) == 1
    assert stack.scalar("SELECT count(*) FROM alerts WHERE sent_at IS NOT NULL") == 1


def test_two_hundred_identical_failures_are_a_handful_of_messages_counting_two_hundred(start, slack):
    stack = start()
    started = time.monotonic()
    for _ in range(200):
        stack.put("ranging", INVALID)
    wait_for(lambda: len(stack.events("system/parsing-failed")) == 200, 60, "200 parsing failures")
    assert time.monotonic() - started < 60  # within a minute
    wait_for(lambda: sum(count_of(m) for m in slack.messages()) >= 200, 4 * WINDOW_S + 30,
             "messages counting 200 failures")
    time.sleep(3)
    messages = slack.messages()
    print("messages' counts:", [count_of(m) for m in messages])
    assert sum(count_of(m) for m in messages) == 200
    assert len(messages) <= 5, [count_of(m) for m in messages]
    assert count_of(messages[0]) < 200  # the first went at once, not after the window
    events = {e.id for e in stack.events("system/parsing-failed")}
    for message in messages:
        listed = fields(message).get("Event Ids") or fields(message)["Event Id"]
        ids = [int(i) for i in listed.split(" and ")[0].split(", ")]
        assert set(ids) <= events and len(ids) == min(5, count_of(message))
    assert stack.scalar("SELECT count(*) FROM alerts WHERE sent_at IS NULL") == 0


def test_slack_down_loses_nothing_blocks_nothing_and_sends_each_alert_once(start, slack):
    stack = start(alert_burst_ids=50)
    slack.down(OUTAGE_S)
    outage_ends = time.monotonic() + OUTAGE_S
    for _ in range(10):
        stack.put("ranging", INVALID)
    stack.put("ranging", UB_RANGING)
    # Processing goes on while Slack is down: every failure is recorded, its alert waits.
    wait_for(lambda: len(stack.events("system/parsing-failed")) == 10 and stack.events("system/processing-failed"),
             OUTAGE_S, "the failures, while Slack is down")
    wait_for(lambda: slack.refused > 0, OUTAGE_S, "a post refused by the Slack that is down")
    assert time.monotonic() < outage_ends and slack.messages() == []
    assert stack.scalar("SELECT count(*) FROM alerts WHERE sent_at IS NULL") == 11

    wait_for(lambda: stack.scalar("SELECT count(*) FROM alerts WHERE sent_at IS NULL") == 0, OUTAGE_S + 30,
             "every alert delivered once Slack is back")
    time.sleep(4)  # and none again
    messages = slack.messages()
    assert all(m.at >= outage_ends - 0.5 for m in messages)
    listed = Counter()
    for message in messages:
        value = fields(message).get("Event Ids") or fields(message)["Event Id"]
        listed.update(int(i) for i in value.split(", "))
    expected = {e.id for e in stack.events("system/parsing-failed") + stack.events("system/processing-failed")}
    assert set(listed) == expected and max(listed.values()) == 1
    assert sum(count_of(m) for m in messages) == 11
