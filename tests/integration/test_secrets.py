"""Known fake credentials, in the settings and in channel secrets, reach none of the places people
or third parties read: Celery's conf dump (what Flower's worker "Config" tab shows), Sentry events
(sentry-sdk with an in-memory transport, exceptions raised inside the Login with Amazon exchange
and Flipkart's token call while their secrets are in local variables), the logs of runs that fail
with those credentials, and the events and alerts those runs write.

Real Postgres and sandbox server; a local socket stands in for a token endpoint whose answer breaks off.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from types import SimpleNamespace

import pytest
import sentry_sdk
from celery.worker import control
from sentry_sdk.transport import Transport
from sqlalchemy import text

from sandbox.core import ChannelBehaviour
from wheel.marketplaces.amazon.client import LwaCredentials, SpApiClient
from wheel.marketplaces.base import HttpConfig
from wheel.marketplaces.flipkart.client import FlipkartClient
from wheel.notifications import LogSender
from wheel.observability import init_sentry
from wheel.services import alerts
from wheel.services.channels import add_channel
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.services.sync import run_sync
from wheel.settings import Settings
from workers.bootstrap import celery_app

PG, REDIS, MQ, SLACK = "pg-S3cret-1f9a", "redis-S3cret-2b8c", "mq-S3cret-3c7d", "xoxb-S3cret-4d6e"
LWA_ID, LWA_SECRET, REFRESH = "amzn1.application-oa2-client.fake", "amzn-S3cret-5e5f", "Atzr|S3cret-6f4a"
FK_ID, FK_SECRET = "fk-app-fake", "fk-S3cret-7a3b"
FK_BASIC = base64.b64encode(f"{FK_ID}:{FK_SECRET}".encode()).decode()
SECRETS = (PG, REDIS, MQ, SLACK, LWA_SECRET, REFRESH, FK_SECRET, FK_BASIC)


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


class InMemory(Transport):
    """Sentry's transport, without the network: every envelope is kept."""

    def __init__(self):
        super().__init__(None)
        self.envelopes = []

    def capture_envelope(self, envelope) -> None:
        self.envelopes.append(envelope)


@pytest.fixture
def broken_endpoint():
    """A token endpoint whose answer breaks off in the middle of its chunked body."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{\"access_token\": \"")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(2)
    listener.close()


@pytest.fixture
def sentry():
    transport = InMemory()
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: reporting off again for the rest of the run


def test_no_fake_credential_reaches_celery_conf_sentry_logs_or_events(
        sessions, sandbox, secrets, adapters, broken_endpoint, sentry, caplog):
    settings = Settings(
        database_url=f"postgresql+psycopg://wheel:{PG}@db.internal:5432/wheel",
        redis_url=f"redis://:{REDIS}@redis.internal:6379/0",
        oms_url=f"amqp://app:{MQ}@mq.internal:5672//",
        slack_token=SLACK,
        sentry_dsn="https://publickey@sentry.invalid/1",
    )

    # 1. Celery's `conf` remote-control command (Flower's "Config" tab) and its bug report.
    app = celery_app(settings)
    dumped = json.dumps(control.conf(SimpleNamespace(app=app), with_defaults=True), default=str)
    assert "broker_url" in dumped  # the dump is the real one
    assert leaked(dumped + app.bugreport()) == []

    # 2. Sentry: exceptions raised inside the LWA exchange and Flipkart's token call, their
    # secrets in local variables on the way, and one with the settings in a local.
    assert init_sentry(settings, component="wheel-test")
    client = sentry_sdk.get_client()
    client.transport.kill()
    client.transport = sentry
    amazon = SpApiClient(broken_endpoint, f"{broken_endpoint}/auth/o2/token",
                         LwaCredentials(LWA_ID, LWA_SECRET, REFRESH), HttpConfig(1, 2))
    flipkart = FlipkartClient(broken_endpoint, FK_ID, FK_SECRET, HttpConfig(1, 2))
    for call in (amazon.access_token, lambda: flipkart.get_listings(["S1"], SimpleNamespace(acquire=lambda op: None))):
        try:
            call()
        except Exception:  # noqa: BLE001 - whatever it is, Sentry gets it
            sentry_sdk.capture_exception()

    def fails_holding(config: Settings) -> None:
        raise RuntimeError("something went wrong")

    try:
        fails_holding(settings)
    except RuntimeError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush()
    sent = "".join(envelope.serialize().decode("utf-8", "replace") for envelope in sentry.envelopes)
    assert len(sentry.envelopes) == 3 and "_exchange" in sent and "_fetch_token" in sent  # the frames went
    assert leaked(sent) == []

    # 3. Logs, events and alerts of runs that fail with those credentials (the marketplace refuses them).
    sandbox.state.channels["UZ"] = ChannelBehaviour(marketplace="amazon", token="Atzr|another", client_id=LWA_ID,
                                                    client_secret="another")
    sandbox.state.channels["UF"] = ChannelBehaviour(marketplace="flipkart", client_id=FK_ID, token="another")
    (secrets.secrets_dir / "amazon-uz").write_text(json.dumps({"client_id": LWA_ID, "client_secret": LWA_SECRET,
                                                               "refresh_token": REFRESH}))
    (secrets.secrets_dir / "flipkart-uf").write_text(json.dumps({"app_id": FK_ID, "app_secret": FK_SECRET}))
    caplog.set_level(logging.DEBUG)
    with sessions.begin() as session:
        add_channel(session, channel_id="UZ", marketplace="amazon", base_url=f"{sandbox.base_url}/amazon",
                    credentials_ref="amazon-uz", known_marketplaces=("amazon",),
                    options={"seller_id": "UZ", "lwa_url": f"{sandbox.base_url}/amazon/auth/o2/token"})
        add_channel(session, channel_id="UF", marketplace="flipkart", base_url=f"{sandbox.base_url}/flipkart",
                    credentials_ref="flipkart-uf", known_marketplaces=("flipkart",), options={"location_id": "LOC1"})
        [stored] = store_batch(session, [IncomingMessage("Q.INVENTORY", (
            b'<EXTNInventoryList><EXTNInventoryItemList>'
            b'<EXTNInventoryItem ChannelID="UZ" EAN="E1" ItemID="S1" Quantity="4"/>'
            b'<EXTNInventoryItem ChannelID="UF" EAN="E1" ItemID="S1" Quantity="4"/>'
            b'</EXTNInventoryItemList></EXTNInventoryList>'), None)])
    process_message(sessions, stored.inbox_id, operation_for_queue={"Q.INVENTORY": "inventory"}.get,
                    max_message_bytes=10_000)
    refused = []
    for channel_id in ("UZ", "UF"):
        outcome = run_sync(sessions, channel_id, adapters=adapters, worker="w:1", lease_s=30,
                           gate_for=lambda ch, ad: SimpleNamespace(acquire=lambda op: None),
                           default_retry_delays_s=[0.01], time_budget_s=10, settle_s=0)
        refused += [a for a in outcome.alerts if a.event.level == "error"]
    assert {a.event.channel_id for a in refused} == {"UZ", "UF"}  # both runs failed on the credentials
    # Their alerts (rows in the alerts outbox, written with the events), through the log sender.
    assert alerts.deliver_pending(sessions, LogSender(), worker="w:1").alerts >= 2
    with sessions() as session:
        events = json.dumps(session.execute(text("SELECT name, payload FROM events")).all(), default=str)
    assert "ALERT" in caplog.text and "credentials" in events.lower() + caplog.text.lower()
    # Everything logged, tracebacks included, but the sandbox's own lines (it plays the marketplace).
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    wheel_logs = "\n".join(formatter.format(r) for r in caplog.records if not r.name.startswith(("sandbox", "werkzeug")))
    assert leaked(wheel_logs) == []
    assert leaked(events) == []
