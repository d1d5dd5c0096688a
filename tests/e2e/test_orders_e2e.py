"""Orders and cancellations reach the OMS exactly once (docs/contracts.md, contract 4), through crashes.

2,000 orders and 200 cancellations (WHEEL_TEST_ORDERS) are created in the sandbox across Tata
CLiQ, Flipkart and Amazon and pulled by real beat and workers on short schedules, while the worker
and beat are each killed with SIGKILL twice and the OMS broker (a RabbitMQ node of the test's own,
so that stopping it touches no other test) is stopped for 20 s (WHEEL_TEST_OMS_OUTAGE_S). Then the
test reads the OMS queues as the OMS would and counts what is missing, what is duplicated, and
whether every duplicate carries the same message id as its original.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict

import pytest
from lxml import etree
from pydantic import SecretStr
from sqlalchemy import text

from tests.support.private import PrivateRabbitMQ
from tests.support.processes import wait_for
from wheel.db.models import Channel
from wheel.oms.orders import validate_document
from wheel.services.schedules import ensure_schedules

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(480)]

ORDERS = int(os.environ.get("WHEEL_TEST_ORDERS", "2000"))
CANCELLATIONS = ORDERS // 10
OUTAGE_S = float(os.environ.get("WHEEL_TEST_OMS_OUTAGE_S", "20"))
EVERY_2S = "* * * * * */2"
SCALE = 200.0
CHANNELS = {
    "UT": ("tatacliq", "token-ut", {"marketplace": "tatacliq", "token": "token-ut"}),
    "UF": ("flipkart", json.dumps({"app_id": "app-uf", "app_secret": "secret-uf"}),
           {"marketplace": "flipkart", "client_id": "app-uf", "token": "secret-uf", "quota_scale": SCALE}),
    "UZ": ("amazon", json.dumps({"client_id": "lwa-uz", "client_secret": "lwa-secret-uz", "refresh_token": "refresh-uz"}),
           {"marketplace": "amazon", "client_id": "lwa-uz", "client_secret": "lwa-secret-uz", "token": "refresh-uz",
            "quota_scale": SCALE, "order_lag_s": 1}),
}


@pytest.fixture
def broker(tmp_path):
    """The OMS broker, a RabbitMQ node of this test's own (tests/support/private.py)."""
    node = PrivateRabbitMQ(tmp_path)
    node.start()
    yield node
    node.destroy()


def setup_stack(stack_factory, **overrides):
    stack = stack_factory({ch: sandbox for ch, (_, _, sandbox) in CHANNELS.items()}, **overrides)
    stack.start_sandbox()
    for channel_id, (marketplace, secret, _) in CHANNELS.items():
        options = {"oms_header": {"EntryType": channel_id}}
        if marketplace == "amazon":
            options.update(seller_id=channel_id, lwa_url=f"{stack.sandbox_url}/amazon/auth/o2/token", order_lag_s=1)
        stack.add_channel(channel_id, secret, marketplace=marketplace, options=options, quota_scale=SCALE)
        with stack.sessions.begin() as session:
            channel = session.get(Channel, channel_id)
            jobs = {"orders": EVERY_2S} if marketplace == "amazon" else {"orders": EVERY_2S, "cancellations": EVERY_2S}
            ensure_schedules(session, channel, jobs=jobs)
    return stack


def stored_orders(stack, channel: str) -> list[str]:
    with stack.engine.connect() as connection:
        return list(connection.execute(text("SELECT order_id FROM orders WHERE channel_id = :c ORDER BY id"), {"c": channel}).scalars())


def test_every_order_and_cancellation_reaches_the_oms_once_through_crashes(stack_factory, broker):
    stack = setup_stack(stack_factory, oms_url=SecretStr(broker.url()), job_run_deadline_s=10, sweeper_deadline_s=5,
                        sweeper_interval_s=2,
                        orders_initial_lookback_s=3600, publish_batch_size=100)
    queues = "oms,notifications,publisher,marketplace.amazon,marketplace.flipkart,marketplace.tatacliq"
    worker = stack.add_worker(queues, concurrency=4)
    beat = stack.start_beat()
    per_channel = ORDERS // len(CHANNELS)
    counts = {ch: per_channel for ch in CHANNELS}
    counts["UT"] += ORDERS - per_channel * len(CHANNELS)
    created: dict[str, dict[str, dict]] = defaultdict(dict)
    expected_cancels: dict[tuple[str, str], set[str] | None] = {}  # None: the whole order
    waves = 10
    stopped_at = restarted_at = None

    def kill_and_restart(process, restart):
        process.kill()
        restart(process)

    try:
        for wave in range(waves):
            for channel, total in counts.items():
                n = total // waves + (total % waves if wave == waves - 1 else 0)
                for order in stack.create_orders(channel, n, lines_per_order=2, seed=wave):
                    created[channel][order["order_id"]] = order
            if wave == 2:
                kill_and_restart(worker, stack.start_worker)
            if wave == 4:
                kill_and_restart(beat, lambda p: p.start())
            if wave == 6:
                broker.stop()
                stopped_at = time.monotonic()
            time.sleep(1.5)

        # Cancel orders Wheel has stored (as a buyer would, some time after ordering): 30% in part.
        wait_for(lambda: all(len(stored_orders(stack, ch)) >= 0.5 * counts[ch] for ch in CHANNELS), 120,
                 "half the orders to be stored")
        kill_and_restart(worker, stack.start_worker)  # during the OMS outage
        share = {ch: CANCELLATIONS // len(CHANNELS) for ch in CHANNELS}
        share["UT"] += CANCELLATIONS - sum(share.values())
        for channel, n in share.items():
            chosen = stored_orders(stack, channel)[:n]
            specs = []
            for index, order_id in enumerate(chosen):
                lines = [line["line_id"] for line in created[channel][order_id]["lines"]]
                partial = index % 10 < 3
                spec = {"order_id": order_id, "type": ("buyer_cancellation", "seller_cancellation", "marketplace_cancellation")[index % 3]}
                if partial:
                    spec["line_ids"] = lines[:1]
                specs.append(spec)
                expected_cancels[(channel, order_id)] = set(lines[:1]) if partial else None
            stack.cancel_orders(channel, cancellations=specs)
        kill_and_restart(beat, lambda p: p.start())
        remaining = OUTAGE_S - (time.monotonic() - stopped_at)
        if remaining > 0:
            time.sleep(remaining)
    finally:
        if stopped_at is not None:
            broker.start()
            restarted_at = time.monotonic()
    print(f"OMS broker was down {restarted_at - stopped_at:.0f}s")

    def done():
        with stack.engine.connect() as connection:
            row = connection.execute(text(
                "SELECT count(*) FILTER (WHERE kind = 'order') AS orders,"
                " count(*) FILTER (WHERE kind = 'cancellation') AS cancellations,"
                " count(*) FILTER (WHERE sent_at IS NULL) AS pending FROM outbox")).one()
        return (row.orders, row.cancellations, row.pending) == (ORDERS, CANCELLATIONS, 0) or (row.orders, row.cancellations, row.pending)

    wait_for(lambda: done() is True, 240, "every order and cancellation to be published", interval=1)

    taken = {"orders": stack.drain(stack.settings.queue_orders), "cancellations": stack.drain(stack.settings.queue_cancellations)}
    report = {}
    for kind, deliveries in taken.items():
        ids = Counter(d.message_id for d in deliveries)
        by_order: dict[tuple[str, str], set[str]] = defaultdict(set)
        for delivery in deliveries:
            assert validate_document(delivery.body) == ("order" if kind == "orders" else "cancellation")
            root = etree.fromstring(delivery.body)
            by_order[(root.get("EntryType"), root.get("OrderNo"))].add(delivery.message_id)
        report[kind] = {"messages": len(deliveries), "distinct": len(ids),
                        "duplicates": sum(n - 1 for n in ids.values()),
                        "orders_under_two_ids": sum(1 for v in by_order.values() if len(v) > 1),
                        "by_order": by_order, "bodies": {d.message_id: d.body for d in deliveries}}
    expected_orders = {(ch, oid) for ch, orders in created.items() for oid in orders}
    missing_orders = expected_orders - set(report["orders"]["by_order"])
    missing_cancels = set(expected_cancels) - set(report["cancellations"]["by_order"])
    print(f"orders: {report['orders']['messages']} messages, {report['orders']['distinct']} distinct ids, "
          f"{len(missing_orders)} missing, {report['orders']['duplicates']} duplicates (same id)")
    print(f"cancellations: {report['cancellations']['messages']} messages, {report['cancellations']['distinct']} distinct ids, "
          f"{len(missing_cancels)} missing, {report['cancellations']['duplicates']} duplicates (same id)")
    print(f"worker starts {worker.starts}, beat starts {beat.starts}")

    assert not missing_orders, sorted(missing_orders)[:10]
    assert not missing_cancels, sorted(missing_cancels)[:10]
    assert set(report["orders"]["by_order"]) == expected_orders  # nothing extra
    for kind in taken:
        # A duplicate is the same message put again (same id), never a second message for an order.
        assert report[kind]["orders_under_two_ids"] == 0
        # Only a crash between the put and the database commit makes one: at most a batch per worker kill.
        assert report[kind]["duplicates"] <= 2 * 100
    # Each cancellation says exactly what was cancelled.
    for (channel, order_id), lines in expected_cancels.items():
        [message_id] = report["cancellations"]["by_order"][(channel, order_id)]
        root = etree.fromstring(report["cancellations"]["bodies"][message_id])
        if lines is None:
            assert root.get("Action") == "CANCEL", (channel, order_id)
        else:
            assert root.get("Action") == "MODIFY", (channel, order_id)
            skus = {created[channel][order_id]["lines"][0]["sku"]}
            assert {line.find("Item").get("ItemID") for line in root.iter("OrderLine")} == skus
    # Every run was started, and none failed for good.
    assert stack.events("system.cron/failed") == [] or all("429" not in e.payload.get("error", "") for e in stack.events("system.cron/failed"))
    assert len(stack.events("order/received")) == ORDERS
    assert len(stack.events("order/sent-to-oms")) == ORDERS
    assert stack.events("system/oms-publish-failed"), "the outage should have been reported"


def test_a_restarted_or_second_beat_neither_skips_nor_doubles_a_run(stack_factory):
    stack = stack_factory({"UT": {"marketplace": "tatacliq", "token": "token-ut"}}, job_run_deadline_s=30)
    stack.start_sandbox()
    stack.add_channel("UT", "token-ut")
    with stack.sessions.begin() as session:
        ensure_schedules(session, session.get(Channel, "UT"), jobs={"orders": EVERY_2S})
    stack.add_worker("oms,publisher,marketplace.tatacliq", concurrency=2)
    first = stack.start_beat()
    time.sleep(6)
    second = type(first)("beat2", first.argv, stack.env, stack.tmp).start()  # started by mistake
    time.sleep(6)
    first.kill()  # SIGKILL: the second carries on alone
    time.sleep(4)
    second.kill()  # no beat at all for a while: due times pass unfired
    time.sleep(5)
    first.start()  # back: it fires what was missed, then carries on
    time.sleep(6)
    first.stop()
    time.sleep(1)

    wait_for(lambda: stack.scalar("SELECT count(*) FROM job_runs WHERE status <> 'succeeded'") == 0, 30, "every run to finish")
    with stack.engine.connect() as connection:
        due = list(connection.execute(text("SELECT due_at FROM job_runs ORDER BY due_at")).scalars())
    gaps = [(b - a).total_seconds() for a, b in zip(due, due[1:])]
    pulls = [c for c in stack.calls("UT") if c["path"].endswith("/new-orders")]
    print(f"{len(due)} runs over {(due[-1] - due[0]).total_seconds():.0f}s; gaps {sorted(set(gaps))}; {len(pulls)} pulls")
    assert len(due) >= 10
    assert set(gaps) == {2.0}, gaps  # no due time skipped, none twice
    assert len(pulls) == len(due)  # each run pulled once: a second beat doubled nothing
