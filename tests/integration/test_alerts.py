"""Alerts reach Slack as plain text: nothing taken from an OMS message or a marketplace answer can
turn into a mention (<!channel>) or a link in the alert channel.

A stand-in for Slack's Web API (chat.postMessage) runs in the test process; the alert goes through
slack_sdk's real client to it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wheel.notifications import SlackAlerter
from wheel.services import alerts
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message


class SlackApi(BaseHTTPRequestHandler):
    """chat.postMessage: remembers the JSON body and answers ok, as Slack does."""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posted.append((self.path, json.loads(body)))
        answer = json.dumps({"ok": True, "channel": "C1", "ts": "1.1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def slack() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlackApi)
    server.posted = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_markup_in_an_oms_message_reaches_slack_escaped(sessions, slack):
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

    alerter = SlackAlerter("xoxb-test", "#wheel-alerts", base_url=f"http://127.0.0.1:{slack.server_port}/api/")
    alerts.send_alert(sessions, failed.id, alerter=alerter, dashboard_url="http://dash.example/q?a=1&b=2")

    [(path, posted)] = slack.posted
    assert path == "/api/chat.postMessage"
    text = posted["text"]
    assert "item &lt;!channel&gt; on channel &lt;https://evil.example|click&gt; &amp; co" in text
    assert "<" not in text and ">" not in text
    assert "&amp;b=2" in text  # every & is escaped, ours included
    assert posted.get("unfurl_links") is False and posted.get("unfurl_media") is False
