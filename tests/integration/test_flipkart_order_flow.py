"""Flipkart orders and cancellations through the pull service into Postgres and the outbox: the
sandbox (in a thread) answers as Flipkart, the real adapter pulls, the real pull service stores."""

from __future__ import annotations

import json
import time

import pytest
import redis
import requests
from sqlalchemy import text

from sandbox.app import ChannelBehaviour
from wheel.db.models import Channel
from wheel.quota import RedisQuotaGate
from wheel.services import pulls, schedules
from wheel.services.channels import add_channel
from wheel.services.sync import channel_config

APP_ID, APP_SECRET = "app-uf", "secret-uf-0123456789"
DAY = 24 * 3600


@pytest.fixture
def pull(sessions, sandbox, secrets, adapters, settings):
    sandbox.state.channels["UF"] = ChannelBehaviour(marketplace="flipkart", client_id=APP_ID, token=APP_SECRET,
                                                    quota_scale=1000)
    (secrets.secrets_dir / "flipkart-uf").write_text(json.dumps({"app_id": APP_ID, "app_secret": APP_SECRET}))
    with sessions.begin() as session:
        add_channel(session, channel_id="UF", marketplace="flipkart", base_url=f"{sandbox.base_url}/flipkart",
                    credentials_ref="flipkart-uf", known_marketplaces=("flipkart",))
        session.flush()
        schedules.ensure_schedules(session, session.get(Channel, "UF"))
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    queues = pulls.OmsQueues(settings.queue_orders, settings.queue_cancellations)

    def source_for(channel):
        return adapters(channel_config(channel)), RedisQuotaGate(client, channel.id, {})

    def run(job: str = "orders") -> pulls.PullResult:
        with sessions.begin() as session:
            due = schedules.run_now(session, "UF", job)
        outcome = pulls.run_pull(sessions, due.run_id, source_for=source_for, queues=queues, worker="test",
                                 initial_lookback_s=600)
        assert outcome.status == "succeeded", outcome
        return outcome

    return run


def create(sandbox, *orders: dict) -> list[dict]:
    response = requests.post(f"{sandbox.base_url}/_sandbox/orders", json={"channel": "UF", "orders": list(orders)},
                             timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["created"]


def cancel(sandbox, order_id: str, line_ids: list[str]) -> None:
    response = requests.post(f"{sandbox.base_url}/_sandbox/cancellations", timeout=5, json={
        "channel": "UF", "cancellations": [{"order_id": order_id, "line_ids": line_ids, "type": "buyer_cancellation",
                                            "reason": "changed my mind"}]})
    assert response.status_code == 200, response.text


def steer(sandbox, shipment_id: str, **attributes) -> None:
    response = requests.patch(f"{sandbox.base_url}/flipkart/_sandbox/shipments/UF/{shipment_id}", json=attributes,
                              timeout=5)
    assert response.status_code == 200, response.text


def outbox(sessions) -> list[tuple[str, str, bytes]]:
    with sessions() as session:
        return [(r.kind, r.order_id, bytes(r.body)) for r in
                session.execute(text("SELECT kind, order_id, body FROM outbox ORDER BY id"))]


def events(sessions, name: str) -> list[dict]:
    with sessions() as session:
        return [r.payload for r in session.execute(text("SELECT payload FROM events WHERE name = :n ORDER BY id"),
                                                   {"n": name})]


def test_a_shipment_approved_late_is_caught_by_the_next_sweep_and_no_order_is_sent_twice(sandbox, sessions, pull):
    now = time.time()
    late, on_time = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}], "created": now - 2 * 3600,
                                     "extra": {"approved_at": now + DAY}},
                           {"lines": [{"sku": "S2", "price": "20"}]})
    assert pull().orders == 1
    steer(sandbox, late["shipment_id"], approved_at=time.time())  # payment verified two hours on
    assert pull().orders == 1
    again = pull()  # the same shipments, swept again
    assert (again.orders, again.failures) == (0, 0)
    assert [(kind, order_id) for kind, order_id, _ in outbox(sessions)] == [("order", on_time["order_id"]),
                                                                            ("order", late["order_id"])]
    assert len(events(sessions, "order/received")) == 2 and events(sessions, "order/lines-added") == []


def test_a_held_shipment_is_imported_once_its_hold_is_released_and_nothing_is_lost(sandbox, sessions, pull):
    (held,) = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}], "created": time.time() - 2 * 3600,
                               "extra": {"hold": True}})
    assert pull().orders == 0
    steer(sandbox, held["shipment_id"], hold=False)  # released hours after the order was placed
    assert pull().orders == 1
    assert pull().orders == 0
    assert [(kind, order_id) for kind, order_id, _ in outbox(sessions)] == [("order", held["order_id"])]


def test_an_item_cancelled_before_the_import_is_neither_an_order_line_nor_a_cancellation_for_the_oms(sandbox, sessions,
                                                                                                     pull):
    (made,) = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}, {"sku": "S2", "price": "20"}]})
    gone, kept = made["lines"]
    cancel(sandbox, made["order_id"], [gone["line_id"]])

    assert pull().orders == 1
    [(_, _, body)] = outbox(sessions)
    assert b'ItemID="S2"' in body and b'ItemID="S1"' not in body
    assert pull("cancellations").cancellations == 0
    assert len(outbox(sessions)) == 1  # the OMS never had S1: nothing to cancel there
    (skipped,) = events(sessions, "cancellation/not-sent")
    assert skipped["order_id"] == made["order_id"] and skipped["lines"] == [gone["line_id"]]

    cancel(sandbox, made["order_id"], [kept["line_id"]])
    assert pull("cancellations").cancellations == 1
    kinds = [(kind, body) for kind, _, body in outbox(sessions)]
    assert [kind for kind, _ in kinds] == ["order", "cancellation"]
    # Every line the OMS has is cancelled: the whole order.
    assert b'Action="CANCEL"' in kinds[1][1] and b"OrderLine" not in kinds[1][1]
    assert pull("cancellations").cancellations == 0 and len(outbox(sessions)) == 2


def test_an_item_cancelled_before_its_order_arrives_is_not_released_to_the_oms_with_it(sandbox, sessions, pull):
    (made,) = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}, {"sku": "S2", "price": "20"}],
                               "extra": {"hold": True}})
    gone = made["lines"][0]
    cancel(sandbox, made["order_id"], [gone["line_id"]])
    # The cancellation comes first: it waits for its order.
    assert pull("cancellations").cancellations == 1
    assert len(events(sessions, "cancellation/held")) == 1
    steer(sandbox, made["shipment_id"], hold=False)
    assert pull().orders == 1
    [(kind, _, body)] = outbox(sessions)
    assert kind == "order" and b'ItemID="S1"' not in body
    (skipped,) = events(sessions, "cancellation/not-sent")
    assert skipped["lines"] == [gone["line_id"]]
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM cancellations WHERE status = 'held'")).scalar_one() == 0
