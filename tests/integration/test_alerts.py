"""The alerts outbox (wheel/services/alerts.py) against real Postgres and a stand-in for Slack.

The stand-in (tests/support/slack_standin.py) plays Slack's chat.postMessage and an incoming
webhook; Wheel reaches it through slack-sdk's real clients.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from tests.support.slack_standin import SlackStandIn, count_of, fields, texts
from wheel.events import NewEvent, record
from wheel.notifications import LogSender, WebApiSender, WebhookSender, sender_from_settings
from wheel.secrets import SecretStore
from wheel.services import sweeper
from wheel.services.alerts import DeliveryOptions, deliver_pending
from wheel.services.channels import add_channel
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.settings import Settings

TOKEN = "xoxb-S3cret-alerts-9f8e"
OPTIONS = DeliveryOptions(window_s=60, first_ids=5, payload_chars=1500, retry_max_s=300)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def api(slack) -> WebApiSender:
    return WebApiSender(TOKEN, "#wheel-alerts", timeout_s=5, base_url=slack.api_url)


def failure(session, name="system/processing-failed", channel="UB", **payload) -> int:
    payload = {"error": "HTTP 500 from Tata CLiQ; gave up after 4 attempts",
               "items": [{"sku": "SKU3", "ean": "EAN_3"}], **payload}
    return record(session, NewEvent(type="system", name=name, level="error", channel_id=channel,
                                    marketplace="tatacliq", payload=payload)).id


def alert_rows(sessions) -> list:
    with sessions() as session:
        return session.execute(text("SELECT * FROM alerts ORDER BY id")).all()


def test_an_error_event_writes_its_alert_row_in_its_own_transaction_and_a_warning_does_not(sessions):
    with sessions.begin() as session:
        error = failure(session)
        record(session, NewEvent(type="domain", name="ranging/retrying", level="warning", channel_id="UB"))
        wanted = record(session, NewEvent(type="domain", name="cancellation/requested", level="warning", alert=True))
        key = NewEvent(type="system", name="system/task-failed", level="error", dedupe_key="k1")
        first, again = record(session, key), record(session, key)
    assert again.created is False
    assert [(r.event_id, r.name, r.level) for r in alert_rows(sessions)] == [
        (error, "system/processing-failed", "error"), (wanted.id, "cancellation/requested", "warning"),
        (first.id, "system/task-failed", "error")]
    with pytest.raises(RuntimeError):
        with sessions.begin() as session:
            failure(session)
            raise RuntimeError("rolled back: no event, no alert")
    assert len(alert_rows(sessions)) == 3


def test_markup_in_an_oms_message_reaches_slack_escaped(sessions, slack, api):
    # An ItemID of <!channel> (written &lt;!channel&gt; in the XML) and a link in the ChannelID,
    # in a message the schema refuses (a negative quantity): the error names the item and channel.
    body = (b'<EXTNInventoryList><EXTNInventoryItemList>'
            b'<EXTNInventoryItem ChannelID="&lt;https://evil.example|click&gt; &amp; co" EAN="E1" '
            b'ItemID="&lt;!channel&gt;" Quantity="-1"/>'
            b'</EXTNInventoryItemList></EXTNInventoryList>')
    with sessions.begin() as session:
        [stored] = store_batch(session, [IncomingMessage("Q.INVENTORY", body, None)])
    processed = process_message(sessions, stored.inbox_id, operation_for_queue={"Q.INVENTORY": "inventory"}.get,
                                max_message_bytes=10_000)
    [failed] = [a for a in processed.alerts if a.event.name == "system/parsing-failed"]
    assert "<!channel>" in failed.event.payload["error"]  # the event keeps what the OMS sent

    report = deliver_pending(sessions, api, worker="test", options=OPTIONS)
    assert (report.messages, report.alerts) == (1, 1)

    [message] = slack.messages()
    assert message.path == "/api/chat.postMessage" and message.body["channel"] == "#wheel-alerts"
    shown = "\n".join(texts(message))
    assert "item &lt;!channel&gt; on channel &lt;https://evil.example|click&gt; &amp; co" in shown
    assert "<" not in shown and ">" not in shown
    # Inside the payload's code block too (the error is in the payload).
    [code] = [t for t in texts(message) if t.startswith("*Payload*")]
    assert "&lt;!channel&gt;" in code and "```" in code
    assert fields(message)["Event Id"] == str(failed.id)
    assert f"wheelctl inbox show {stored.inbox_id}" in shown  # the command that shows the message
    assert message.body.get("unfurl_links") is False and message.body.get("unfurl_media") is False


def test_one_failure_is_one_message_with_every_field_coloured_by_level(sessions, slack, api):
    with sessions.begin() as session:
        add_channel(session, channel_id="UB", marketplace="tatacliq", base_url="http://x", credentials_ref="t-ub",
                    known_marketplaces=("tatacliq",))
        parent = record(session, NewEvent(type="oms", name="oms/items-ranged")).id
        event_id = record(session, NewEvent(type="system", name="system/processing-failed", level="error",
                                            parent_id=parent, channel_id="UB", marketplace="tatacliq",
                                            payload={"error": "HTTP 500", "items": [{"sku": "SKU3"}, {"sku": "SKU4"}],
                                                     "blob": "x" * 5000})).id
    deliver_pending(sessions, api, worker="test", options=OPTIONS)
    [message] = slack.messages()
    [attachment] = message.body["attachments"]
    assert attachment["color"] == "#d00000"
    assert fields(message) == {"Channel Name": "Tata CLiQ", "Channel Id": "UB", "Event Id": str(event_id),
                               "Parent Id": str(parent), "Count": "1", "SKUs": "SKU3, SKU4"}
    [code] = [t for t in texts(message) if t.startswith("*Payload*")]
    assert len(code) < 1600 and "(cut: " in code  # 1,500 characters of payload, and says it was cut
    assert texts(message)[-1] == f"Shows or fixes the cause: `wheelctl events --parent {parent}`"
    [row] = alert_rows(sessions)
    assert row.sent_at is not None and row.message_first_id == row.id and row.attempts == 1


def test_channel_blocked_points_at_the_channels_command_and_orders_name_their_ids(sessions, slack, api):
    with sessions.begin() as session:
        failure(session, name="system/channel-blocked", items=[])
        record(session, NewEvent(type="domain", name="order/failed", level="error", channel_id="UZ",
                                 marketplace="amazon", payload={"order_id": "406-1", "error": "no address"}))
        record(session, NewEvent(type="domain", name="cancellation/requested", level="warning", alert=True,
                                 channel_id="UZ", marketplace="amazon",
                                 payload={"order_id": "406-2", "skus": ["S9"], "action": "cancel it in Seller Central"}))
    deliver_pending(sessions, api, worker="test", options=OPTIONS)
    blocked, order, request = slack.messages()
    assert "`wheelctl channels list`" in texts(blocked)[-1]
    assert "`wheelctl orders list --status failed --channel UZ`" in texts(order)[-1]
    assert fields(order)["Order Ids"] == "406-1" and fields(order)["Channel Name"] == "Amazon India"
    assert request.body["attachments"][0]["color"] == "#daa038"  # a warning's colour
    assert fields(request)["SKUs"] == "S9" and "cancel it in Seller Central" in texts(request)[1]


def test_no_secret_reaches_slack(sessions, slack, tmp_path: Path):
    # The token comes from a secret file, as in production; an event that (wrongly) carried it,
    # and a payload with credential-like keys, still show neither.
    (tmp_path / "slack-token").write_text(TOKEN + "\n")
    settings = Settings(slack_api_url=slack.api_url, secrets_dir=tmp_path)
    sender = sender_from_settings(settings, SecretStore({}, tmp_path))
    assert isinstance(sender, WebApiSender)
    with sessions.begin() as session:
        failure(session, error=f"refused token {TOKEN}", access_token="Atzr|S3cret-refresh",
                credentials={"app_secret": "fk-S3cret"})
    deliver_pending(sessions, sender, worker="test", options=OPTIONS)
    [message] = slack.messages()
    assert message.authorization == f"Bearer {TOKEN}"  # how Slack authenticates the call, and only there
    for secret in (TOKEN, "S3cret"):
        assert secret not in message.raw
    assert "refused token ***" in message.raw


def test_webhook_delivery_and_its_429_is_honoured(sessions, slack):
    sender = WebhookSender(slack.webhook_url, timeout_s=5)
    with sessions.begin() as session:
        failure(session)
    slack.throttle(1, retry_after_s=30)
    report = deliver_pending(sessions, sender, worker="test", options=OPTIONS)
    assert report.throttled_s == 30 and slack.messages() == []
    [row] = alert_rows(sessions)
    with sessions() as session:
        wait = session.execute(text("SELECT extract(epoch FROM next_attempt_at - now()) FROM alerts")).scalar()
    assert 28 < float(wait) <= 30 and row.claimed_at is None and "429" in row.last_error
    assert deliver_pending(sessions, sender, worker="test", options=OPTIONS).messages == 0  # not before then
    _make_due(sessions)
    deliver_pending(sessions, sender, worker="test", options=OPTIONS)
    [message] = slack.messages()
    assert message.kind == "webhook" and slack.webhook_url.split("/services/")[1] not in message.raw


def test_web_api_429_holds_every_group_not_yet_posted(sessions, slack, api):
    with sessions.begin() as session:
        failure(session, channel="UA")
        failure(session, channel="UB")
    slack.throttle(1, retry_after_s=7)
    report = deliver_pending(sessions, api, worker="test", options=OPTIONS)
    assert report.throttled_s == 7 and report.failed == 2 and slack.messages() == []
    with sessions() as session:
        waits = session.execute(text("SELECT extract(epoch FROM next_attempt_at - now()) FROM alerts")).scalars().all()
    assert all(5 < float(w) <= 7 for w in waits)


def test_slack_down_keeps_alerts_pending_then_sends_each_once(sessions, slack, api):
    with sessions.begin() as session:
        ids = [failure(session, channel=f"U{i}") for i in range(3)]
    slack.down()
    report = deliver_pending(sessions, api, worker="test", options=OPTIONS)
    assert report.failed == 3 and slack.messages() == [] and slack.refused == 3
    assert all(r.sent_at is None and r.claimed_at is None and "503" in r.last_error for r in alert_rows(sessions))
    slack.up()
    _make_due(sessions)
    deliver_pending(sessions, api, worker="test", options=OPTIONS)
    assert sorted(int(fields(m)["Event Id"]) for m in slack.messages()) == ids
    assert deliver_pending(sessions, api, worker="test", options=OPTIONS).messages == 0
    assert len(slack.messages()) == 3


def test_a_burst_is_one_message_now_and_one_per_window(sessions, slack, api):
    with sessions.begin() as session:
        first = failure(session)
    posted = time.monotonic()
    deliver_pending(sessions, api, worker="test", options=OPTIONS)
    with sessions.begin() as session:
        rest = [failure(session, items=[{"sku": f"S{i}"}]) for i in range(199)]
    report = deliver_pending(sessions, api, worker="test", options=OPTIONS)
    assert report.held == 199 and len(slack.messages()) == 1
    # Held until the window after the first message ends (60 s from its post, less the time since).
    assert 60 - (time.monotonic() - posted) - 1 < report.next_in_s <= 60
    # The window passes.
    with sessions.begin() as session:
        session.execute(text("UPDATE alerts SET sent_at = sent_at - interval '60 seconds', "
                             "next_attempt_at = now() WHERE sent_at IS NOT NULL OR claimed_at IS NULL"))
    deliver_pending(sessions, api, worker="test", options=OPTIONS)
    one, burst = slack.messages()
    assert count_of(one) == 1 and count_of(burst) == 199
    assert fields(burst)["Event Ids"] == ", ".join(map(str, rest[:5])) + " and 194 more"
    assert "×199" in texts(burst)[1] and fields(burst)["SKUs"].startswith("S0, S1, S2")
    assert fields(one)["Event Id"] == str(first)


def test_a_redelivered_or_concurrent_pass_never_posts_a_row_twice(sessions, slack, api):
    with sessions.begin() as session:
        ids = [failure(session, channel=f"C{i}") for i in range(40)]
    # A pass whose worker died after claiming (before or during its post): its rows are not posted again.
    with sessions.begin() as session:
        session.execute(text("UPDATE alerts SET claimed_at = now(), claimed_by = 'dead' WHERE id <= 5"))
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        for _ in range(3):
            deliver_pending(sessions, api, worker=threading.current_thread().name, options=OPTIONS)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    posted = Counter(int(fields(m)["Event Id"]) for m in slack.messages())
    assert set(posted) == set(ids[5:]) and max(posted.values()) == 1


def test_rows_a_killed_worker_claimed_are_posted_once_its_claim_has_timed_out(sessions, slack, api):
    # Found by the chaos run: a worker SIGKILLed during its post left its rows claimed and unsent,
    # and nothing ever posted them. Past the claim timeout (well past any post's own timeout), a
    # pass takes them again: a lost alert is worse than the rare duplicate of a worker that died
    # between Slack's answer and its mark.
    with sessions.begin() as session:
        ids = [failure(session, channel=f"K{i}") for i in range(3)]
        session.execute(text("UPDATE alerts SET claimed_at = now() - interval '2 minutes', claimed_by = 'dead' "
                             "WHERE event_id = ANY(:ids)"), {"ids": ids[:2]})
        session.execute(text("UPDATE alerts SET claimed_at = now(), claimed_by = 'alive' WHERE event_id = :id"),
                        {"id": ids[2]})
    options = DeliveryOptions(window_s=0, claim_timeout_s=60)
    assert sweeper.sweep(sessions, deadline_s=300, send_process=lambda i: None, send_sync=lambda c, m: None,
                         send_alerts=lambda: None).alerts_due is True
    deliver_pending(sessions, api, worker="w", options=options)
    deliver_pending(sessions, api, worker="w", options=options)
    posted = Counter(int(fields(m)["Event Id"]) for m in slack.messages())
    assert posted == {ids[0]: 1, ids[1]: 1}  # the live claim is left to its worker


def test_without_slack_the_alert_goes_to_the_log(sessions, caplog, tmp_path):
    assert isinstance(sender_from_settings(Settings(secrets_dir=tmp_path), SecretStore({}, tmp_path)), LogSender)
    (tmp_path / "slack-webhook-url").write_text("http://127.0.0.1:9/services/x")
    assert isinstance(sender_from_settings(Settings(secrets_dir=tmp_path), SecretStore({}, tmp_path)), WebhookSender)
    with sessions.begin() as session:
        failure(session)
    deliver_pending(sessions, LogSender(), worker="test", options=OPTIONS)
    assert "ALERT :rotating_light: system/processing-failed on channel UB: HTTP 500" in caplog.text


def test_settings_mask_the_webhook_whole():
    settings = Settings(slack_webhook_url=SecretStr("https://hooks.example/services/T/B/S3cret"), slack_token=TOKEN)
    shown = json.dumps(settings.redacted(), default=str)
    assert "S3cret" not in shown and settings.redacted()["slack_webhook_url"] == "***"


def _make_due(sessions) -> None:
    with sessions.begin() as session:
        session.execute(text("UPDATE alerts SET next_attempt_at = now() WHERE sent_at IS NULL"))


def test_the_sweeper_starts_a_pass_only_when_alerts_are_due(sessions):
    passes = []

    def sweep():
        return sweeper.sweep(sessions, deadline_s=300, send_process=lambda i: None, send_sync=lambda c, m: None,
                             send_alerts=lambda: passes.append(1))

    assert sweep().alerts_due is False and passes == []
    with sessions.begin() as session:
        failure(session)
        session.execute(text("UPDATE alerts SET next_attempt_at = now() + interval '1 hour'"))
    assert sweep().alerts_due is False  # waiting for its next attempt
    _make_due(sessions)
    assert sweep().alerts_due is True and passes == [1]


def test_a_post_failing_in_an_unexpected_way_is_tried_again_not_lost(sessions, slack, api):
    class Flaky:
        secrets = api.secrets
        calls = 0

        def post(self, message):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ValueError("a proxy's HTML page where JSON was expected")
            api.post(message)

    with sessions.begin() as session:
        event_id = failure(session)
    assert deliver_pending(sessions, Flaky(), worker="test", options=OPTIONS).failed == 1
    [row] = alert_rows(sessions)
    assert row.claimed_at is None and row.sent_at is None and "HTML page" in row.last_error
    _make_due(sessions)
    deliver_pending(sessions, Flaky(), worker="test", options=OPTIONS)
    [message] = slack.messages()
    assert fields(message)["Event Id"] == str(event_id)
