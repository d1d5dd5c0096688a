"""Recovering the order pulls by hand (`wheelctl jobs rewind`, `wheelctl orders retry|release|expire`)
against the real Amazon sandbox, Postgres and RabbitMQ: the pull, the outbox and the publisher run
in the test process; the commands run as an operator would (a `wheelctl` process)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
import requests
from lxml import etree
from sqlalchemy import text

from bridge.transports.amqp import AmqpTransport
from sandbox.core import ChannelBehaviour
from tests.support.processes import wheelctl
from tests.support.services import settings_env
from wheel.db import locks
from wheel.db.models import Channel, Schedule
from wheel.marketplaces.base import PullCapabilities
from wheel.quota import RedisQuotaGate
from wheel.services import order_recovery, outbox, pulls, schedules
from wheel.services.channels import add_channel, update_channel
from wheel.services.order_recovery import RecoveryError
from wheel.services.schedules import ScheduleError
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
def queues(settings):
    return pulls.OmsQueues(settings.queue_orders, settings.queue_cancellations)


@pytest.fixture
def pull(sessions, adapters, settings, amazon, queues):
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()

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


@pytest.fixture
def cli(settings, secrets):
    env = {**os.environ, **settings_env(settings.model_copy(update={"secrets_dir": secrets.secrets_dir}))}

    def run(*args, check=True):
        return subprocess.run(wheelctl(*args), env=env, capture_output=True, text=True, check=check, timeout=60,
                              stdin=subprocess.DEVNULL)

    return run


def post(sandbox, path: str, body: dict) -> dict:
    response = requests.post(f"{sandbox.base_url}/_sandbox/{path}", json={"channel": CHANNEL, **body}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def create(sandbox, *lines: tuple[str, int, str]) -> dict:
    [order] = post(sandbox, "orders", {"orders": [{"lines": [{"sku": sku, "quantity": quantity, "price": price}
                                                             for sku, quantity, price in lines]}]})["created"]
    return order


def count(sessions, sql: str, **params) -> int:
    with sessions() as session:
        return session.execute(text(sql), params).scalar_one()


def watermark(sessions) -> datetime:
    with sessions() as session:
        return session.execute(text("SELECT watermark FROM schedules WHERE channel_id = :c AND job = 'orders'"),
                               {"c": CHANNEL}).scalar_one()


# -- rewind -------------------------------------------------------------------------------------


def test_a_rewind_reads_a_missed_order_again_and_sends_nothing_twice(sandbox, sessions, pull, oms, cli):
    first = create(sandbox, ("KURTA-1", 1, "1000.00"))
    assert pull().orders == 1
    # An order Amazon indexed late: last updated two hours ago, before the window the pulls read.
    late = create(sandbox, ("DUPATTA-1", 1, "250.00"))
    sandbox.state.orders.get(CHANNEL, late["order_id"]).updated = time.time() - 7200
    assert pull().orders == 0
    before = watermark(sessions)

    refused = cli("jobs", "rewind", CHANNEL, "orders", "--to", (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(),
                  check=False)
    assert refused.returncode == 2 and "in the future" in refused.stderr
    out = cli("jobs", "rewind", CHANNEL, "orders", "--to", "3h").stdout
    assert f"{CHANNEL} orders: watermark " in out and "IST" in out and "the next run re-reads from" in out
    assert watermark(sessions) < before - timedelta(hours=2, minutes=50)
    with sessions() as session:
        [rewound] = session.execute(text("SELECT payload FROM events WHERE name = 'system.cron/rewound'")).scalars()
    assert rewound["job"] == "orders" and rewound["by"] == "wheelctl"

    again = pull()
    assert (again.orders, again.failures) == (1, 0)  # the late one; the first is known and not sent again
    sent = oms()
    assert sorted(r.get("OrderNo") for r in sent["orders"]) == sorted([first["order_id"], late["order_id"]])
    assert count(sessions, "SELECT count(*) FROM outbox") == 2
    assert count(sessions, "SELECT count(*) FROM events WHERE name = 'order/received'") == 2
    assert watermark(sessions) > before  # the run moved it on again


def test_a_rewind_is_refused_forward_in_the_future_without_a_window_and_while_a_pull_runs(sandbox, sessions, pull,
                                                                                            engine):
    pull()
    mark = watermark(sessions)
    capabilities = PullCapabilities(jobs=("orders",), overlap_s=600)
    with pytest.raises(ScheduleError, match="in the future"):
        order_recovery.rewind(sessions, CHANNEL, "orders", datetime.now(timezone.utc) + timedelta(minutes=1),
                              capabilities=capabilities)
    with pytest.raises(ScheduleError, match="only goes back"):
        order_recovery.rewind(sessions, CHANNEL, "orders", mark,
                              capabilities=capabilities)
    with pytest.raises(ScheduleError, match="no window to rewind"):
        order_recovery.rewind(sessions, CHANNEL, "orders", mark - timedelta(hours=1),
                              capabilities=PullCapabilities(uses_window=False))
    with pytest.raises(ScheduleError, match="has no cancellations job"):
        order_recovery.rewind(sessions, CHANNEL, "cancellations", mark - timedelta(hours=1), capabilities=capabilities)

    with sessions() as session:
        schedule_id = session.execute(text("SELECT id FROM schedules WHERE job = 'orders'")).scalar_one()
    with engine.connect() as running:  # a pull holds its schedule's lock while it runs
        running.execute(text("SELECT pg_advisory_lock(:k)"), {"k": locks.schedule_lock(schedule_id)})
        with pytest.raises(ScheduleError, match="is running"):
            order_recovery.rewind(sessions, CHANNEL, "orders", mark - timedelta(hours=1), capabilities=capabilities)
        running.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": locks.schedule_lock(schedule_id)})
        running.commit()
    assert watermark(sessions) == mark

    with sessions.begin() as session:  # a pull that was to resume from a page starts afresh
        session.execute(text("UPDATE schedules SET cursor = '{\"page\": \"x\"}' WHERE id = :id"), {"id": schedule_id})
    done = order_recovery.rewind(sessions, CHANNEL, "orders", mark - timedelta(hours=1), capabilities=capabilities)
    assert done.resumed_cursor and done.rereads_from == mark - timedelta(hours=1, minutes=10)
    with sessions() as session:
        assert session.get(Schedule, schedule_id).cursor is None


# -- retry --------------------------------------------------------------------------------------


def test_a_failed_order_is_retried_once_its_channel_is_fixed_and_its_held_cancellation_follows(
        sandbox, sessions, pull, oms, cli, queues):
    with sessions.begin() as session:  # a channel set to the wrong currency: every order fails to map
        update_channel(session, CHANNEL, options={**session.get(Channel, CHANNEL).options, "currency": "USD"})
    order = create(sandbox, ("KURTA-1", 2, "1000.00"), ("DUPATTA-1", 1, "250.00"))
    post(sandbox, "cancellations", {"cancellations": [{"order_id": order["order_id"],
                                                       "line_ids": [order["lines"][0]["line_id"]]}]})
    outcome = pull()
    assert (outcome.orders, outcome.failures, outcome.cancellations) == (0, 1, 1)  # the cancellation is held
    assert count(sessions, "SELECT count(*) FROM cancellations WHERE status = 'held'") == 1

    still = cli("orders", "retry", CHANNEL, order["order_id"], check=False)
    assert still.returncode == 2 and "still cannot be mapped" in still.stderr and "not USD" in still.stderr
    held = cli("orders", "release", CHANNEL, order["order_id"], "--yes", check=False)
    assert held.returncode == 2 and f"orders retry {CHANNEL} {order['order_id']}" in held.stderr

    with sessions.begin() as session:
        update_channel(session, CHANNEL, options={**session.get(Channel, CHANNEL).options, "currency": "INR"})
    out = cli("orders", "retry", CHANNEL, order["order_id"]).stdout
    assert "maps now and waits in the outbox" in out and "1 held cancellation(s) after it" in out
    sent = oms()
    [document] = sent["orders"]
    assert document.get("OrderNo") == order["order_id"] and len(list(document.iter("OrderLine"))) == 2
    [cancellation] = sent["cancellations"]
    assert cancellation.get("Action") == "MODIFY" and cancellation.find("OrderLines/OrderLine/Item").get("ItemID") == "KURTA-1"
    with sessions() as session:
        retried = session.execute(text("SELECT level, payload FROM events WHERE name = 'order/retried' ORDER BY id")).all()
        status = session.execute(text("SELECT status, failure FROM orders")).one()
    assert [(level, payload["sent"]) for level, payload in retried] == [("warning", False), ("info", True)]
    assert status == ("sent", None)
    again = cli("orders", "retry", CHANNEL, order["order_id"], check=False)
    assert again.returncode == 2 and "is sent, not failed" in again.stderr
    assert pull().orders == 0 and oms() == {"orders": [], "cancellations": []}  # nothing twice


def test_retry_says_what_is_missing(sessions, amazon, queues):
    with pytest.raises(RecoveryError, match="no order NOPE"):
        order_recovery.retry_order(sessions, CHANNEL, "NOPE", queues)
    with pytest.raises(RecoveryError, match="no channel XX"):
        order_recovery.retry_order(sessions, "XX", "NOPE", queues)


# -- held cancellations -------------------------------------------------------------------------


def held_cancellation(sandbox, pull) -> dict:
    """An order cancelled whole before Wheel pulled it: Amazon gives only its cancellation, held."""
    order = create(sandbox, ("KURTA-1", 1, "1000.00"))
    post(sandbox, "cancellations", {"cancellations": [{"order_id": order["order_id"], "type": "buyer_cancellation"}]})
    outcome = pull()
    assert (outcome.orders, outcome.cancellations) == (0, 1)
    return order


def test_a_held_cancellation_expired_by_hand_still_follows_its_order(sandbox, sessions, pull, cli, queues):
    order = held_cancellation(sandbox, pull)
    out = cli("orders", "expire", CHANNEL, order["order_id"]).stdout
    assert "no longer waits for its order" in out
    assert count(sessions, "SELECT count(*) FROM cancellations WHERE status = 'expired'") >= 1
    assert count(sessions, "SELECT count(*) FROM cancellations WHERE status = 'held'") == 0
    with sessions() as session:
        [(level, payload)] = session.execute(text("SELECT level, payload FROM events WHERE name = 'cancellation/expired'"))
    assert level == "info" and payload["by"] == "wheelctl" and payload["order_id"] == order["order_id"]
    again = cli("orders", "expire", CHANNEL, order["order_id"], check=False)
    assert again.returncode == 2 and "is expired: none is held" in again.stderr
    missing = cli("orders", "expire", CHANNEL, "NOPE", check=False)
    assert missing.returncode == 2 and "no cancellation of order NOPE" in missing.stderr


def test_a_held_cancellation_released_by_hand_goes_to_the_oms_once(sandbox, sessions, pull, oms, cli):
    order = held_cancellation(sandbox, pull)
    refused = cli("orders", "release", CHANNEL, order["order_id"], check=False)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert oms() == {"orders": [], "cancellations": []}

    out = cli("orders", "release", CHANNEL, order["order_id"], "--yes").stdout
    assert "waits in the outbox for the OMS" in out
    sent = oms()
    assert sent["orders"] == []
    [cancellation] = sent["cancellations"]
    assert (cancellation.get("OrderNo"), cancellation.get("Action")) == (order["order_id"], "CANCEL")
    with sessions() as session:
        names = session.execute(text("SELECT name FROM events WHERE name LIKE 'cancellation/%' ORDER BY id")).scalars().all()
    assert names == ["cancellation/held", "cancellation/received", "cancellation/released", "cancellation/sent-to-oms"]
    again = cli("orders", "release", CHANNEL, order["order_id"], "--yes", check=False)
    assert again.returncode == 2 and "none is held" in again.stderr
    assert pull().cancellations == 0 and oms() == {"orders": [], "cancellations": []}
