"""Filling the database through Wheel's own pipeline, for the reports and retention tests: OMS
messages through the inbox and the message service, pushes by the sync service against the sandbox,
orders and cancellations by the pull service, and the outbox onto a real RabbitMQ queue."""

from __future__ import annotations

import redis
import requests
from sqlalchemy import text

from bridge.transports.amqp import AmqpTransport
from sandbox.core import ChannelBehaviour
from wheel.db.models import Channel
from wheel.marketplaces.base import QuotaWait
from wheel.quota import RedisQuotaGate
from wheel.services import outbox, pulls, schedules
from wheel.services.channels import add_channel
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.services.sync import channel_config, run_sync

QUEUES = {"Q.RANGING": "ranging", "Q.DERANGING": "deranging", "Q.INVENTORY": "inventory", "Q.PRICING": "pricing"}


def ranging(*items: tuple[str, str]) -> bytes:
    rows = "".join(f'<EXTNChannelItem ChannelID="{c}" EAN="E-{s}" ItemID="{s}" RangeFlag="Y"/>' for c, s in items)
    return f"<EXTNChannelList><EXTNChannelItemList>{rows}</EXTNChannelItemList></EXTNChannelList>".encode()


def inventory(*items: tuple[str, str, int]) -> bytes:
    rows = "".join(f'<EXTNInventoryItem ChannelID="{c}" EAN="E-{s}" ItemID="{s}" Quantity="{q}"/>' for c, s, q in items)
    return f"<EXTNInventoryList><EXTNInventoryItemList>{rows}</EXTNInventoryItemList></EXTNInventoryList>".encode()


def pricing(*items: tuple[str, str, str, str]) -> bytes:
    rows = "".join(f'<EXTNPriceItem ChannelID="{c}" EAN="E-{s}" ItemID="{s}" MRP="{m}" SellingPrice="{p}"/>'
                   for c, s, m, p in items)
    return f"<EXTNPriceList><EXTNPriceItemList>{rows}</EXTNPriceItemList></EXTNPriceList>".encode()


class NoQuota:
    """A quota gate that always grants: these tests count what was done, not how fast."""

    def acquire(self, operation):
        pass

    def throttled(self, retry_after=None):
        return QuotaWait("unknown", retry_after or 0.05)


def oms(sessions, queue: str, body: bytes):
    """One OMS message stored in the inbox as the bridge stores it, then processed as its task does."""
    with sessions.begin() as session:
        inbox_id = store_batch(session, [IncomingMessage(queue, body, None)])[0].inbox_id
    return process_message(sessions, inbox_id, operation_for_queue=QUEUES.get, max_message_bytes=1_000_000)


def sync(sessions, adapters, channel: str):
    return run_sync(sessions, channel, adapters=adapters, gate_for=lambda ch, ad: NoQuota(), worker="w:1",
                    lease_s=30, default_retry_delays_s=[0.01], time_budget_s=10, settle_s=0, request_budget_s=7)


def sandbox_post(sandbox, path: str, body: dict) -> dict:
    response = requests.post(f"{sandbox.base_url}/_sandbox/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def tatacliq_switch(sandbox, channel: str, **switches) -> None:
    response = requests.put(f"{sandbox.base_url}/_sandbox/tatacliq/channels/{channel}", json=switches, timeout=5)
    assert response.status_code == 200, response.text


def order_channel(sessions, sandbox, secrets, channel: str) -> None:
    """A Tata CLiQ channel with its pull schedules."""
    sandbox.state.channels[channel] = ChannelBehaviour(marketplace="tatacliq", token="t0ken")
    ref = f"tatacliq-{channel.lower()}"
    (secrets.secrets_dir / ref).write_text("t0ken")
    with sessions.begin() as session:
        add_channel(session, channel_id=channel, marketplace="tatacliq", base_url=f"{sandbox.base_url}/tatacliq",
                    credentials_ref=ref, known_marketplaces=("tatacliq",))
        session.flush()
        schedules.ensure_schedules(session, session.get(Channel, channel))


class Puller:
    """Runs a channel's pulls now, as beat and the worker would, and publishes the outbox."""

    def __init__(self, sessions, adapters, settings):
        self.sessions, self.adapters, self.settings = sessions, adapters, settings
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.redis.flushdb()
        self.queues = pulls.OmsQueues(settings.queue_orders, settings.queue_cancellations)
        self.transport = AmqpTransport(settings.oms_url.get_secret_value())
        self.transport.connect()
        self.transport.declare([settings.queue_orders, settings.queue_cancellations])

    def pull(self, channel: str, job: str = "orders") -> pulls.PullResult:
        with self.sessions.begin() as session:
            due = schedules.run_now(session, channel, job)
        return pulls.run_pull(self.sessions, due.run_id, source_for=self._source, queues=self.queues, worker="test",
                              initial_lookback_s=3600)

    def publish(self) -> int:
        outlet = outbox.Outlet(put=self.transport.put, commit=lambda: self.transport.commit([]))
        return outbox.publish_pending(self.sessions, outlet, batch_size=100).sent

    def close(self) -> None:
        self.transport.close()

    def _source(self, channel):
        return self.adapters(channel_config(channel)), RedisQuotaGate(self.redis, channel.id, {})


def backdate(sessions, statement: str, **params) -> None:
    """Move rows into the past (an UPDATE of their timestamps): the only way to age them in a test."""
    with sessions.begin() as session:
        session.execute(text(statement), params)
