"""Pulls into Postgres and the outbox, and the publisher onto a real RabbitMQ queue (contract 4).

The sandbox serves Tata CLiQ's documented XML; the pull service, the outbox and the publisher run
in the test process against the real database and broker.
"""

from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import select, text

from bridge.transports.amqp import AmqpTransport
from wheel.db.models import Channel, JobRun, Schedule
from wheel.oms.orders import validate_document
from wheel.quota import RedisQuotaGate
from wheel.services import outbox, pulls, schedules
from wheel.services.channels import add_channel
from wheel.services.sync import channel_config

SAMPLE_ORDER = {
    "order_id": "181219-001-345786",
    "ship_to": {"first_name": "Tamizhvendan", "last_name": "Sembiyan", "line1": "Plot No 222",
                "line2": "Ashok Nagar 42nd Street", "city": "Chennai", "state": "TamilNadu", "zip_code": "600001"},
    "payment_ref": "000000-1545216772601",
    "lines": [{"line_id": "200058001702351", "sku": "200374", "price": "900.0"}],
}
EXPECTED = b"""<Order OrderNo="181219-001-345786" EntryType="UT">
  <PersonInfoBillTo City="Chennai" FirstName="Tamizhvendan" LastName="Sembiyan" State="TamilNadu" ZipCode="600001">
    <Extn IRLAddressLine1="Plot No 222" IRLAddressLine2="Ashok Nagar 42nd Street"/>
  </PersonInfoBillTo>
  <PersonInfoShipTo City="Chennai" FirstName="Tamizhvendan" LastName="Sembiyan" State="TamilNadu" ZipCode="600001">
    <Extn IRLAddressLine1="Plot No 222" IRLAddressLine2="Ashok Nagar 42nd Street"/>
  </PersonInfoShipTo>
  <PaymentDetailsList><PaymentDetails ProcessedAmount="900.0" Reference1="000000-1545216772601"/></PaymentDetailsList>
  <OrderLines><OrderLine><Item ItemID="200374"/><LinePriceInfo LineTotal="900.0"/></OrderLine></OrderLines>
</Order>"""


def canonical(xml: bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(xml, parser), method="c14n")


@pytest.fixture
def queues(settings):
    return pulls.OmsQueues(settings.queue_orders, settings.queue_cancellations)


@pytest.fixture
def channel(sessions, sandbox, secrets):
    from sandbox.core import ChannelBehaviour

    sandbox.state.channels["UT"] = ChannelBehaviour(marketplace="tatacliq", token="t0ken")
    (secrets.secrets_dir / "tatacliq-ut").write_text("t0ken")
    with sessions.begin() as session:
        add_channel(session, channel_id="UT", marketplace="tatacliq", base_url=f"{sandbox.base_url}/tatacliq",
                    credentials_ref="tatacliq-ut", known_marketplaces=("tatacliq",), options={"oms_header": {"EntryType": "UT"}})
        session.flush()
        schedules.ensure_schedules(session, session.get(Channel, "UT"))
    return "UT"


@pytest.fixture
def pull(sessions, adapters, settings, queues, channel):
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()

    def source_for(ch):
        adapter = adapters(channel_config(ch))
        return adapter, RedisQuotaGate(client, ch.id, {})

    def run(job: str = "orders") -> pulls.PullResult:
        with sessions.begin() as session:
            due = schedules.run_now(session, "UT", job)
        return pulls.run_pull(sessions, due.run_id, source_for=source_for, queues=queues, worker="test",
                              initial_lookback_s=3600)

    return run


@pytest.fixture
def transport(settings):
    transport = AmqpTransport(settings.oms_url.get_secret_value())
    transport.connect()
    transport.declare([settings.queue_orders, settings.queue_cancellations])
    yield transport
    transport.close()


def outlet(transport):
    return outbox.Outlet(put=transport.put, commit=lambda: transport.commit([]))


def drain(transport, queue):
    out = []
    while (delivery := transport.get_one(queue, wait_s=0.5)) is not None:
        out.append(delivery)
    return out


def post(sandbox, path, body):
    import requests

    response = requests.post(f"{sandbox.base_url}/_sandbox/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def test_the_sample_order_reaches_the_oms_queue_as_the_documented_document(sandbox, sessions, pull, transport, settings):
    post(sandbox, "orders", {"channel": "UT", "orders": [SAMPLE_ORDER]})
    outcome = pull()
    assert (outcome.status, outcome.orders, outcome.outboxed) == ("succeeded", 1, 1)
    report = outbox.publish_pending(sessions, outlet(transport), batch_size=10)
    assert report.sent == 1
    [delivery] = drain(transport, settings.queue_orders)
    assert canonical(delivery.body) == canonical(EXPECTED)
    assert validate_document(delivery.body) == "order"
    assert delivery.message_id == outbox.message_id_for(1)
    with sessions() as session:
        status, sent_at = session.execute(text("SELECT status, sent_at FROM orders")).one()
        names = session.execute(text("SELECT name FROM events ORDER BY id")).scalars().all()
    assert status == "sent" and sent_at is not None
    assert names == ["system.cron/started", "order/received", "order/sent-to-oms"]


def test_overlapping_pulls_and_reruns_store_nothing_twice(sandbox, sessions, pull):
    post(sandbox, "orders", {"channel": "UT", "count": 30, "lines_per_order": 2})
    assert pull().orders == 30
    post(sandbox, "orders", {"channel": "UT", "count": 5})
    again = pull()  # Tata CLiQ answers every open order again: only the 5 new ones are new
    assert (again.orders, again.status) == (5, "succeeded")
    assert pull().orders == 0
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM orders")).scalar_one() == 35
        assert session.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 35
        assert session.execute(select(Schedule.watermark).where(Schedule.job == "orders")).scalar_one() is not None


def test_cancellations_whole_and_partial_and_only_what_is_new(sandbox, sessions, pull, transport, settings):
    created = post(sandbox, "orders", {"channel": "UT", "count": 3, "lines_per_order": 2})["created"]
    pull()
    a, b, c = (order["order_id"] for order in created)
    post(sandbox, "cancellations", {"channel": "UT", "cancellations": [
        {"order_id": a}, {"order_id": b, "line_ids": [created[1]["lines"][0]["line_id"]]}]})
    assert pull("cancellations").cancellations == 2
    assert pull("cancellations").cancellations == 0  # seen again: nothing new
    post(sandbox, "cancellations", {"channel": "UT", "cancellations": [{"order_id": b}]})  # the rest of b
    assert pull("cancellations").cancellations == 1
    outbox.publish_pending(sessions, outlet(transport), batch_size=100)
    docs = [etree.fromstring(d.body) for d in drain(transport, settings.queue_cancellations)]
    summary = [(d.get("OrderNo"), d.get("Action"), [l.find("Item").get("ItemID") for l in d.iter("OrderLine")]) for d in docs]
    assert summary == [
        (a, "CANCEL", []),
        (b, "MODIFY", [created[1]["lines"][0]["sku"]]),
        (b, "MODIFY", [created[1]["lines"][1]["sku"]]),
    ]
    assert c not in {s[0] for s in summary}


def test_a_cancellation_before_its_order_waits_for_it_and_follows_it(sandbox, sessions, pull, transport, settings):
    [order] = post(sandbox, "orders", {"channel": "UT", "count": 1, "lines_per_order": 2})["created"]
    post(sandbox, "cancellations", {"channel": "UT", "cancellations": [{"order_id": order["order_id"], "line_ids": [order["lines"][0]["line_id"]]}]})
    assert pull("cancellations").cancellations == 1  # held: the OMS has not got the order
    assert outbox.publish_pending(sessions, outlet(transport), batch_size=10).sent == 0
    with sessions() as session:
        assert session.execute(text("SELECT status FROM cancellations")).scalar_one() == "held"
        assert session.execute(text("SELECT count(*) FROM events WHERE name = 'cancellation/held'")).scalar_one() == 1
    pull("orders")
    outbox.publish_pending(sessions, outlet(transport), batch_size=10)
    [sent_order] = drain(transport, settings.queue_orders)
    [sent_cancel] = drain(transport, settings.queue_cancellations)
    assert etree.fromstring(sent_cancel.body).get("Action") == "MODIFY"
    assert int(sent_order.message_id[-11:]) < int(sent_cancel.message_id[-11:])  # the order first


def test_an_order_that_cannot_be_mapped_is_kept_with_the_reason(sandbox, sessions, pull):
    bad = {**SAMPLE_ORDER, "order_id": "BAD-1", "ship_to": {**SAMPLE_ORDER["ship_to"], "zip_code": ""}}
    post(sandbox, "orders", {"channel": "UT", "orders": [bad]})
    outcome = pull()
    assert (outcome.orders, outcome.failures) == (0, 1)
    with sessions() as session:
        status, failure, raw = session.execute(text("SELECT status, failure, raw FROM orders")).one()
        event = session.execute(text("SELECT level, payload FROM events WHERE name = 'order/failed'")).one()
        assert session.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 0
    assert status == "failed" and "Pincode" in failure and "BAD-1" in raw
    assert event.level == "error" and "Pincode" in event.payload["error"]
    assert [a.event.name for a in outcome.alerts] == ["order/failed"]


def test_a_crash_between_the_put_and_the_database_commit_resends_with_the_same_ids(sandbox, sessions, pull, transport, settings):
    post(sandbox, "orders", {"channel": "UT", "count": 5})
    pull()

    class Crash(Exception):
        pass

    def commit_then_crash():
        transport.commit([])
        raise Crash("killed after the put was committed")

    with pytest.raises(Crash):
        outbox.publish_pending(sessions, outbox.Outlet(put=transport.put, commit=commit_then_crash), batch_size=10)
    assert outbox.publish_pending(sessions, outlet(transport), batch_size=10).sent == 5
    deliveries = drain(transport, settings.queue_orders)
    ids = [d.message_id for d in deliveries]
    assert len(ids) == 10 and len(set(ids)) == 5  # each sent twice, under one id
    assert outbox.publish_pending(sessions, outlet(transport), batch_size=10).sent == 0


def test_a_failing_marketplace_fails_the_run_loudly_and_the_next_run_carries_on(sandbox, sessions, pull):
    sandbox.state.channels["UT"].fail_status = 500
    outcome = pull()
    assert outcome.status == "failed"
    with sessions() as session:
        run = session.execute(select(JobRun).order_by(JobRun.id.desc())).scalars().first()
        event = session.execute(text("SELECT level, payload FROM events WHERE name = 'system.cron/failed'")).one()
    assert run.status == "failed" and "500" in run.error
    assert event.level == "error" and "500" in event.payload["error"]
    sandbox.state.channels["UT"].fail_status = None
    post(sandbox, "orders", {"channel": "UT", "count": 2})
    assert pull().orders == 2


def test_an_order_seen_again_with_more_lines_is_reported_not_dropped(sandbox, sessions, pull):
    [order] = post(sandbox, "orders", {"channel": "UT", "count": 1, "lines_per_order": 1})["created"]
    pull()
    # The marketplace now shows a line the stored order lacks (Flipkart: a second shipment of it).
    book = sandbox.state.orders.get("UT", order["order_id"])
    from sandbox.orders import SandboxLine

    book.lines.append(SandboxLine(line_id="extra-1", sku="SKU-X", quantity=1, price="10.00"))
    outcome = pull()
    assert outcome.orders == 0
    assert [a.event.name for a in outcome.alerts] == ["order/lines-added"]
    assert pull().alerts == []  # said once
    with sessions() as session:
        payload = session.execute(text("SELECT payload FROM events WHERE name = 'order/lines-added'")).scalar_one()
    assert payload["lines"] == ["extra-1"] and "SKU-X" in payload["error"]


def test_a_cursor_the_marketplace_refuses_is_dropped_and_the_window_pulled_again(sandbox, sessions, pull):
    post(sandbox, "orders", {"channel": "UT", "count": 2})
    with sessions.begin() as session:
        session.execute(text("""UPDATE schedules SET cursor = CAST(:c AS jsonb) WHERE job = 'orders'"""),
                        {"c": '{"start": "2026-11-27T00:00:00+00:00", "end": "2026-11-27T00:10:00+00:00", "page": {"bogus": 1}}'})
    # Tata CLiQ's adapter ignores cursors, so refuse it through a channel setting Wheel cannot use instead.
    with sessions.begin() as session:
        session.execute(text("""UPDATE channels SET options = '{"oms_header": "not json"}'"""))
    failed = pull()
    assert failed.status == "failed" and "oms_header" in failed.alerts[0].event.payload["error"]
    with sessions() as session:
        assert session.execute(text("SELECT cursor FROM schedules WHERE job = 'orders'")).scalar_one() is None
    with sessions.begin() as session:
        session.execute(text("""UPDATE channels SET options = '{"oms_header": {"EntryType": "UT"}}'"""))
    assert pull().orders == 2


def set_option(sessions, **options):
    from wheel.services.channels import update_channel

    with sessions.begin() as session:
        update_channel(session, "UT", options=options)


def test_an_open_order_answer_over_the_channel_limit_fails_loudly_and_keeps_the_orders_it_read(sandbox, sessions, pull):
    # Tata CLiQ answers every open order at once. Past the channel's limit (about 140 sandbox
    # orders in 0.1 MB here; 100 MB by default) the pull stops reading: the orders read so far are
    # stored, and the ops team is told, with what to do, that the rest of the book did not come.
    set_option(sessions, max_answer_mb="0.1")
    post(sandbox, "orders", {"channel": "UT", "count": 300, "seed": 7})
    outcome = pull()
    assert outcome.status == "failed"
    assert 100 < outcome.orders < 300
    with sessions() as session:
        stored = session.execute(text("SELECT count(*) FROM orders WHERE status = 'ready'")).scalar_one()
        outboxed = session.execute(text("SELECT count(*) FROM outbox")).scalar_one()
        event = session.execute(text("SELECT level, payload FROM events WHERE name = 'system.cron/failed'")).one()
    assert stored == outboxed == outcome.orders
    error = event.payload["error"]
    assert event.level == "error" and [a.event.name for a in outcome.alerts] == ["system.cron/failed"]
    assert "more than 104,857 bytes" in error and f"the first {outcome.orders} orders" in error
    assert "wheelctl channels set UT --option max_answer_mb=" in error and "ship or cancel" in error
    # Every run says it again until the book shrinks or the limit is raised; then all of it comes.
    assert pull().status == "failed"
    set_option(sessions, max_answer_mb="1")
    again = pull()
    assert again.status == "succeeded" and again.orders == 300 - outcome.orders


def test_an_open_order_answer_near_the_limit_is_taken_whole_with_a_warning_once_a_day(sandbox, sessions, pull):
    set_option(sessions, max_answer_mb="0.4")  # a warning past half of it
    post(sandbox, "orders", {"channel": "UT", "count": 300, "seed": 7})
    outcome = pull()
    assert (outcome.status, outcome.orders) == ("succeeded", 300)
    with sessions() as session:
        event = session.execute(text("SELECT level, payload FROM events WHERE name = 'system.cron/warning'")).one()
    assert event.level == "warning" and [a.event.name for a in outcome.alerts] == ["system.cron/warning"]
    error = event.payload["error"]
    assert "of the 419,430-byte limit" in error and "wheelctl channels set UT --option max_answer_mb=" in error
    assert pull().alerts == []  # once a day, not every 2 minutes


def test_a_bad_answer_limit_fails_the_run_saying_which_option(sandbox, sessions, pull):
    set_option(sessions, max_answer_mb="lots")
    outcome = pull()
    assert outcome.status == "failed" and "max_answer_mb" in outcome.alerts[0].event.payload["error"]

def test_an_order_total_too_big_for_wheel_fails_that_order_and_the_others_go_on(sandbox, sessions, secrets, adapters,
                                                                                queues, transport, settings):
    """orders.total is NUMERIC(14,2): 10^12 does not fit, and Amazon's grandTotal has no bound."""
    import json
    import time

    import redis

    from sandbox.core import ChannelBehaviour

    lag = 0.5
    sandbox.state.channels["UZ"] = ChannelBehaviour(marketplace="amazon", token="Atzr|r", client_id="c",
                                                    client_secret="s", order_lag_s=lag, quota_scale=1000)
    (secrets.secrets_dir / "amazon-uz").write_text(json.dumps({"client_id": "c", "client_secret": "s",
                                                               "refresh_token": "Atzr|r"}))
    with sessions.begin() as session:
        add_channel(session, channel_id="UZ", marketplace="amazon", base_url=f"{sandbox.base_url}/amazon",
                    credentials_ref="amazon-uz", known_marketplaces=("amazon",),
                    options={"seller_id": "UZ", "lwa_url": f"{sandbox.base_url}/amazon/auth/o2/token", "order_lag_s": lag})
        session.flush()
        schedules.ensure_schedules(session, session.get(Channel, "UZ"))
    client = redis.Redis.from_url(settings.redis_url)

    def pull() -> pulls.PullResult:
        with sessions.begin() as session:
            due = schedules.run_now(session, "UZ", "orders")
        return pulls.run_pull(sessions, due.run_id, queues=queues, worker="test", initial_lookback_s=3600,
                              source_for=lambda ch: (adapters(channel_config(ch)), RedisQuotaGate(client, ch.id, {})))

    line, created = {"sku": "200374", "price": "900.0"}, time.time() - 60  # inside the window, past the lag
    post(sandbox, "orders", {"channel": "UZ", "orders": [
        {"order_id": "HUGE-1", "lines": [{**line, "price": "1000000000000.00"}], "created": created},
        {"order_id": "FINE-1", "lines": [line], "created": created}]})
    outcome = pull()
    assert (outcome.status, outcome.orders, outcome.failures) == ("succeeded", 1, 1)
    assert [a.event.name for a in outcome.alerts] == ["order/failed"]
    with sessions() as session:
        rows = dict(session.execute(text("SELECT order_id, status FROM orders")).all())
        failure = session.execute(text("SELECT failure FROM orders WHERE order_id = 'HUGE-1'")).scalar_one()
    assert rows == {"HUGE-1": "failed", "FINE-1": "ready"}
    assert "1000000000000.00" in failure and "999999999999.99" in failure
    # The channel's intake goes on: the next order is pulled, and both good ones reach the OMS.
    post(sandbox, "orders", {"channel": "UZ", "orders": [{"order_id": "FINE-2", "lines": [line], "created": created + 1}]})
    assert pull().orders == 1
    assert outbox.publish_pending(sessions, outlet(transport), batch_size=10).sent == 2
    assert [etree.fromstring(d.body).get("OrderNo") for d in drain(transport, settings.queue_orders)] == ["FINE-1", "FINE-2"]


def test_a_cancellation_held_too_long_expires_loudly_and_still_follows_a_late_order(sandbox, sessions, pull, transport,
                                                                                    settings):
    from wheel.services import queries, sweeper

    [order] = post(sandbox, "orders", {"channel": "UT", "count": 1, "lines_per_order": 2})["created"]
    line = order["lines"][0]
    post(sandbox, "cancellations", {"channel": "UT", "cancellations": [{"order_id": order["order_id"],
                                                                        "line_ids": [line["line_id"]]}]})
    pull("cancellations")  # held: its order has not been pulled

    def sweep():
        return sweeper.sweep(sessions, deadline_s=300, send_process=lambda i: None, send_sync=lambda c, m: None,
                             held_cancellation_max_age_s=3 * 86400)

    assert sweep().alerts == []  # young: it waits
    with sessions.begin() as session:
        session.execute(text("UPDATE cancellations SET received_at = now() - interval '3 days 1 minute'"))
    report = sweep()
    [expired] = report.alerts
    assert expired.event.name == "cancellation/expired" and expired.event.level == "error"
    assert expired.event.channel_id == "UT" and expired.event.payload["order_id"] == order["order_id"]
    assert expired.event.payload["lines"] == [line["line_id"]] and expired.event.payload["skus"] == [line["sku"]]
    assert "has not been received" in expired.event.payload["error"]
    with sessions() as session:
        assert session.execute(text("SELECT status FROM cancellations")).scalar_one() == "expired"
        held = session.execute(text("SELECT id FROM events WHERE name = 'cancellation/held'")).scalar_one()
    assert expired.event.parent_id == held
    assert sweep().alerts == []  # said once
    with sessions() as session:  # `wheelctl orders list --status held` shows it
        [shown] = queries.latest_orders(session, channel_id="UT", status="held", limit=10)
    assert (shown["order_id"], shown["status"]) == (order["order_id"], "expired")

    # The order turns up after all: its cancellation still goes to the OMS, right after it.
    pull("orders")
    assert outbox.publish_pending(sessions, outlet(transport), batch_size=10).sent == 2
    [sent_order] = drain(transport, settings.queue_orders)
    [sent_cancel] = drain(transport, settings.queue_cancellations)
    assert etree.fromstring(sent_cancel.body).get("OrderNo") == order["order_id"]
    assert int(sent_order.message_id[-11:]) < int(sent_cancel.message_id[-11:])
