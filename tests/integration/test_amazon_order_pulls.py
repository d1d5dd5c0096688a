"""Amazon order pulls end to end in one process: the real sandbox server, the real adapter, the pull
service on Postgres and the outbox published onto RabbitMQ. What happens to an order after the OMS
has it: cancelled whole or in part (items reported with quantity 0 too), unmappable, or asked to be
cancelled by the buyer.

Amazon answers no order updated in the last `order_lag_s` (the sandbox keeps that rule) and Wheel
pulls 5 seconds more behind, so each step waits for its changes to settle before pulling.
"""

from __future__ import annotations

import json
import time

import pytest
import redis
import requests
from lxml import etree
from sqlalchemy import text

from bridge.transports.amqp import AmqpTransport
from sandbox.core import ChannelBehaviour
from wheel.db.models import Channel
from wheel.quota import RedisQuotaGate
from wheel.services import outbox, pulls, schedules
from wheel.services.channels import add_channel
from wheel.services.queries import latest_orders
from wheel.services.sync import channel_config

CHANNEL = "UZ"
SECRET = {"client_id": "lwa-uz", "client_secret": "lwa-secret-uz", "refresh_token": "refresh-uz"}


@pytest.fixture
def amazon(sessions, sandbox, secrets):
    sandbox.state.channels[CHANNEL] = ChannelBehaviour(
        marketplace="amazon", client_id=SECRET["client_id"], client_secret=SECRET["client_secret"],
        token=SECRET["refresh_token"], order_lag_s=0, quota_scale=10_000)
    (secrets.secrets_dir / "amazon-uz").write_text(json.dumps(SECRET))
    with sessions.begin() as session:
        add_channel(session, channel_id=CHANNEL, marketplace="amazon", base_url=f"{sandbox.base_url}/amazon",
                    credentials_ref="amazon-uz", known_marketplaces=("amazon",),
                    options={"seller_id": CHANNEL, "lwa_url": f"{sandbox.base_url}/amazon/auth/o2/token",
                             "order_lag_s": 0, "order_lag_margin_s": 0, "oms_header": {"EntryType": CHANNEL}})
        session.flush()
        schedules.ensure_schedules(session, session.get(Channel, CHANNEL), jobs={"orders": "*/3 * * * *"})
    return sandbox.state.channels[CHANNEL]


@pytest.fixture
def pull(sessions, adapters, settings, amazon):
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    queues = pulls.OmsQueues(settings.queue_orders, settings.queue_cancellations)

    def source_for(channel):
        return adapters(channel_config(channel)), RedisQuotaGate(client, channel.id, {})

    def run() -> pulls.PullResult:
        time.sleep(1.2)  # every change so far is inside the window (whole seconds)
        with sessions.begin() as session:
            due = schedules.run_now(session, CHANNEL, "orders")
        outcome = pulls.run_pull(sessions, due.run_id, source_for=source_for, queues=queues, worker="test",
                                 initial_lookback_s=3600)
        assert outcome.status == "succeeded", outcome
        return outcome

    return run


@pytest.fixture
def oms(settings, sessions):
    """Publish the outbox and read the OMS queues: {"orders": [...], "cancellations": [...]} roots."""
    transport = AmqpTransport(settings.oms_url.get_secret_value())
    transport.connect()
    transport.declare([settings.queue_orders, settings.queue_cancellations])

    def publish_and_read() -> dict[str, list]:
        outbox.publish_pending(sessions, outbox.Outlet(put=transport.put, commit=lambda: transport.commit([])),
                               batch_size=100)
        taken = {}
        for kind, queue in (("orders", settings.queue_orders), ("cancellations", settings.queue_cancellations)):
            taken[kind] = []
            while (delivery := transport.get_one(queue, wait_s=0.3)) is not None:
                taken[kind].append(etree.fromstring(delivery.body))
        return taken

    yield publish_and_read
    transport.close()


def post(sandbox, path: str, body: dict) -> dict:
    response = requests.post(f"{sandbox.base_url}/_sandbox/{path}", json={"channel": CHANNEL, **body}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def create(sandbox, *lines: tuple[str, int, str]) -> dict:
    [order] = post(sandbox, "orders", {"orders": [{"lines": [{"sku": sku, "quantity": quantity, "price": price}
                                                             for sku, quantity, price in lines]}]})["created"]
    return order


def events(sessions, name: str) -> list:
    with sessions() as session:
        return list(session.execute(text("SELECT level, payload FROM events WHERE name = :n ORDER BY id"), {"n": name}))


def summary(root) -> tuple:
    return (root.get("OrderNo"), root.get("Action"),
            [(line.find("Item").get("ItemID"), line.get("Quantity")) for line in root.iter("OrderLine")])


def test_an_order_cancelled_after_it_reached_the_oms_is_cancelled_there_once(sandbox, sessions, pull, oms):
    order = create(sandbox, ("KURTA-1", 2, "1000.00"), ("DUPATTA-1", 1, "250.00"))
    assert pull().orders == 1
    assert [r.get("OrderNo") for r in oms()["orders"]] == [order["order_id"]]

    post(sandbox, "cancellations", {"cancellations": [{"order_id": order["order_id"], "type": "buyer_cancellation"}]})
    first, again = pull(), pull()  # the second pull overlaps the first

    assert (first.cancellations, first.failures, first.alerts) == (1, 0, [])
    assert (again.orders, again.cancellations, again.failures) == (0, 0, 0)
    sent = oms()
    assert sent["orders"] == []
    assert [summary(r) for r in sent["cancellations"]] == [(order["order_id"], "CANCEL", [])]


def test_a_cancelled_item_reported_with_quantity_0_is_cancelled_with_the_quantity_the_oms_has(sandbox, sessions, pull,
                                                                                                oms, amazon):
    order = create(sandbox, ("KURTA-1", 2, "1000.00"), ("DUPATTA-1", 1, "250.00"))
    pull()
    oms()
    amazon.cancelled_quantity_zero = True  # Amazon v0's way: the cancelled item has quantity 0, no price
    post(sandbox, "cancellations", {"cancellations": [{"order_id": order["order_id"],
                                                       "line_ids": [order["lines"][0]["line_id"]]}]})
    outcome = pull()

    assert (outcome.cancellations, outcome.failures) == (1, 0)
    assert [summary(r) for r in oms()["cancellations"]] == [(order["order_id"], "MODIFY", [("KURTA-1", "2")])]

    post(sandbox, "cancellations", {"cancellations": [{"order_id": order["order_id"]}]})  # then the rest: all gone
    pull()
    assert [summary(r) for r in oms()["cancellations"]] == [(order["order_id"], "CANCEL", [])]


def test_an_item_cancelled_with_quantity_0_before_the_first_pull_is_left_out_of_the_order(sandbox, sessions, pull,
                                                                                           oms, amazon):
    amazon.cancelled_quantity_zero = True
    order = create(sandbox, ("KURTA-1", 2, "1000.00"), ("DUPATTA-1", 1, "250.00"))
    post(sandbox, "cancellations", {"cancellations": [{"order_id": order["order_id"],
                                                       "line_ids": [order["lines"][0]["line_id"]]}]})
    outcome = pull()

    assert (outcome.orders, outcome.failures) == (1, 0)
    sent = oms()
    [document] = sent["orders"]
    assert [line.find("Item").get("ItemID") for line in document.iter("OrderLine")] == ["DUPATTA-1"]
    assert sent["cancellations"] == []  # the OMS never had the line: nothing to cancel
    [(level, payload)] = events(sessions, "cancellation/not-sent")
    assert level == "warning" and payload["lines"] == [order["lines"][0]["line_id"]]
    assert pull().cancellations == 0 and len(events(sessions, "cancellation/not-sent")) == 1


def test_an_order_sent_and_then_unmappable_is_reported_and_stays_listed(sandbox, sessions, pull, oms):
    order = create(sandbox, ("KURTA-1", 1, "1000.00"))
    pull()
    oms()
    book = sandbox.state.orders.get(CHANNEL, order["order_id"])
    book.lines[0].sku = "KURTA 1"  # Amazon now gives a SKU the OMS cannot take
    book.updated = time.time()
    outcome = pull()

    assert outcome.failures == 1
    assert [a.event.name for a in outcome.alerts] == ["order/failed-after-sent"]
    [(level, payload)] = events(sessions, "order/failed-after-sent")
    assert level == "error" and payload["order_id"] == order["order_id"] and "spaces" in payload["error"]
    with sessions() as session:
        [row] = latest_orders(session, channel_id=CHANNEL, status=None, limit=10)
    assert (row["order_id"], row["status"]) == (order["order_id"], "sent") and "spaces" in row["failure"]
    assert pull().alerts == []  # said once
    assert oms() == {"orders": [], "cancellations": []}


def test_a_buyers_cancellation_request_is_said_once_with_what_to_do(sandbox, sessions, pull, oms):
    order = create(sandbox, ("KURTA-1", 1, "1000.00"), ("DUPATTA-1", 1, "250.00"))
    pull()
    line = order["lines"][1]["line_id"]
    post(sandbox, "cancellation-requests", {"requests": [{"order_id": order["order_id"], "line_ids": [line],
                                                          "reason": "Ordered by mistake"}]})
    first, again = pull(), pull()

    assert [a.event.name for a in first.alerts] == ["cancellation/requested"]
    assert again.alerts == []
    [(level, payload)] = events(sessions, "cancellation/requested")
    assert level == "warning"
    assert (payload["order_id"], payload["lines"], payload["skus"], payload["reason"]) == (
        order["order_id"], [line], ["DUPATTA-1"], "Ordered by mistake")
    assert "Seller Central" in payload["action"]
    assert oms()["cancellations"] == []  # a request is not a cancellation
