"""The bridge's consume loop on the real Postgres, with RabbitMQ or the IBM MQ stand-in.

The Celery side is the bridge's port (`send_process`, `send_alert`): here they record what they
were asked to send.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import select, text

from bridge.consumer import Bridge
from bridge.transports import transport_from_url
from bridge.transports.ibmmq import IbmMqTransport
from tests.support.processes import wait_for
from tests.support.services import TEST_AMQP_URL, delete_queues
from tests.unit import ibmmq_standin as standin
from wheel.db.models import Event, InboxMessage

MQ_URL = "ibmmq://app:passw0rd@mq.example:1414/QM1?channel=DEV.APP.SVRCONN"
IN, BACKOUT = "OMS.INVENTORY", "OMS.BACKOUT"


class Port:
    """The Celery side of the bridge, recording: tasks and alerts it was asked to send."""

    def __init__(self):
        self.sent: list[int] = []
        self.alerts: list[int] = []


def make_bridge(transport, sessions, port, *, queues, backout_queue, **options):
    return Bridge(transport, queues=queues, backout_queue=backout_queue, sessions=sessions,
                  send_process=port.sent.extend, send_alert=port.alerts.append, recoverable=(),
                  stop=threading.Event(), **options)


def running(bridge):
    thread = threading.Thread(target=bridge.run, daemon=True)
    thread.start()
    return thread


def stopped(bridge, thread):
    bridge.stop.set()
    thread.join(10)
    assert not thread.is_alive()


def events(sessions, name):
    with sessions() as session:
        return list(session.execute(select(Event).where(Event.name == name).order_by(Event.id)).scalars())


def inbox(sessions, queue=None):
    with sessions() as session:
        query = select(InboxMessage).order_by(InboxMessage.id)
        if queue:
            query = query.where(InboxMessage.queue == queue)
        return list(session.execute(query).scalars())


@pytest.fixture
def refuse_inbox(engine):
    """Make Postgres refuse inbox rows with an error of the given SQLSTATE (those whose body holds
    `marker`, or all), as a test-only trigger; `refuse_inbox(None)` lifts it."""

    def refuse(sqlstate: str | None, marker: bytes | None = None) -> None:
        with engine.begin() as connection:
            connection.execute(text("DROP TRIGGER IF EXISTS wheel_test_refuse ON inbox"))
            if sqlstate is None:
                return
            condition = "true" if marker is None else f"position('\\x{marker.hex()}'::bytea in NEW.body) > 0"
            connection.execute(text(f"""
                CREATE OR REPLACE FUNCTION wheel_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF {condition} THEN
                    RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = '{sqlstate}';
                  END IF;
                  RETURN NEW;
                END $$"""))
            connection.execute(text("CREATE TRIGGER wheel_test_refuse BEFORE INSERT ON inbox "
                                    "FOR EACH ROW EXECUTE FUNCTION wheel_test_refuse()"))

    yield refuse
    refuse(None)


@pytest.fixture
def amqp_queues():
    names = [f"TEST.BRIDGE.{n}.{uuid.uuid4().hex[:8]}" for n in ("IN", "BACKOUT")]
    yield names
    delete_queues(TEST_AMQP_URL, names)


@pytest.fixture
def queue_manager():
    server = standin.QueueManagerServer("QM1", [IN, BACKOUT], users={"app": "passw0rd"})
    yield standin.listen(server, "mq.example(1414)")
    standin.reset()


# -- finding: the inbox dropped a new message that repeated an old body ---------------------------


def test_a_new_message_repeating_an_acknowledged_body_is_stored_after_a_reconnect(sessions, amqp_queues):
    queue, backout = amqp_queues
    five, seven = b"<Inventory SKU='X' Quantity='5'/>", b"<Inventory SKU='X' Quantity='7'/>"
    oms = transport_from_url(TEST_AMQP_URL)
    oms.connect()
    transport = transport_from_url(TEST_AMQP_URL, prefetch=10)
    transport.connect()
    transport.declare([backout, queue])
    port = Port()
    bridge = make_bridge(transport, sessions, port, queues=[queue], backout_queue=backout)
    try:
        # The OMS sets no message ids: stock 5, then 7, each stored and acknowledged.
        for body in (five, seven):
            oms.put(queue, body, message_id="")
            batch = transport.fetch([queue], max_messages=10, wait_s=5)
            assert [d.message_id for d in batch] == [None]
            bridge.handle(batch)
        # Then 5 again: a new message. The bridge has it in hand when its connection drops.
        oms.put(queue, five, message_id="")
        [in_hand] = transport.fetch([queue], max_messages=10, wait_s=5)
        transport.close()
        transport.connect()
        [again] = transport.fetch([queue], max_messages=10, wait_s=5)
        assert again.body == five and again.redelivered  # flagged, though it was never stored
        bridge.handle([again])
    finally:
        transport.close()
        oms.close()
    rows = inbox(sessions, queue)
    assert [row.body for row in rows] == [five, seven, five], "the stock set back to 5 was dropped"
    assert rows[-1].status == "received" and port.sent == [row.id for row in rows]


# -- finding: the bridge exited on MQ errors that are not connection errors ------------------------


def test_the_bridge_keeps_running_while_gets_are_inhibited_and_consumes_after(sessions, queue_manager, caplog):
    queue_manager.add_message(IN, b"<Inventory SKU='X' Quantity='5'/>")
    queue_manager.inhibit_get(IN)  # ALTER QLOCAL(OMS.INVENTORY) GET(DISABLED), for maintenance
    port = Port()
    bridge = make_bridge(IbmMqTransport(MQ_URL, mq=standin), sessions, port, queues=[IN], backout_queue=BACKOUT,
                         reconnect_max_s=0.2)
    thread = running(bridge)
    try:
        time.sleep(2)
        assert thread.is_alive(), "the bridge exited on MQRC_GET_INHIBITED"
        [stalled] = wait_for(lambda: events(sessions, "system/bridge-stalled"), 10, "the stall event")
        assert "MQRC_GET_INHIBITED (2016)" in stalled.payload["error"] and stalled.level == "error"
        assert port.alerts == [stalled.id]
        assert any("MQRC_GET_INHIBITED" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
        failed = bridge.stats.failed_attempts
        assert 3 <= failed <= 2 / 0.1 + 1  # one attempt per backoff step: at least 0.1 s apart here

        queue_manager.inhibit_get(IN, False)
        [row] = wait_for(lambda: inbox(sessions), 10, "the message to be stored")
        wait_for(lambda: events(sessions, "system/bridge-resumed"), 10, "the resumed event")
        assert port.sent == [row.id] and queue_manager.all_bodies(IN) == []
    finally:
        stopped(bridge, thread)


def test_a_full_backout_queue_holds_the_message_back_until_there_is_room(sessions, queue_manager, refuse_inbox):
    refuse_inbox("22023", marker=b"POISON")  # invalid_parameter_value: this message cannot be stored
    queue_manager.add_message(IN, b"<POISON/>")
    queue_manager.add_message(IN, b"<Inventory SKU='X' Quantity='5'/>")
    queue_manager.set_max_depth(BACKOUT, 0)  # the backout queue is full: MQRC_Q_FULL on the move
    port = Port()
    bridge = make_bridge(IbmMqTransport(MQ_URL, mq=standin), sessions, port, queues=[IN], backout_queue=BACKOUT,
                         max_attempts=2, batch_size=1, reconnect_max_s=0.2)
    thread = running(bridge)
    try:
        [stalled] = wait_for(lambda: events(sessions, "system/bridge-stalled"), 10, "the stall event")
        assert "MQRC_Q_FULL (2053)" in stalled.payload["error"]
        time.sleep(1)
        assert thread.is_alive(), "the bridge exited on MQRC_Q_FULL"
        assert queue_manager.bodies(BACKOUT) == [] and inbox(sessions) == []
        assert b"<POISON/>" in queue_manager.all_bodies(IN)  # kept on its queue (or in the bridge's hands)

        queue_manager.set_max_depth(BACKOUT, None)
        wait_for(lambda: queue_manager.bodies(BACKOUT) == [b"<POISON/>"], 10, "the move to the backout queue")
        [row] = wait_for(lambda: inbox(sessions), 10, "the next message to be stored")
        assert row.body == b"<Inventory SKU='X' Quantity='5'/>"
        [moved] = events(sessions, "system/message-backed-out")
        assert moved.payload["backout_queue"] == BACKOUT
    finally:
        stopped(bridge, thread)


def test_an_internal_database_error_holds_the_batch_without_handing_it_back(sessions, amqp_queues, refuse_inbox):
    queue, backout = amqp_queues
    refuse_inbox("XX000")  # internal_error: SQLAlchemy's InternalError, neither a message's fault nor an outage
    oms = transport_from_url(TEST_AMQP_URL)
    oms.connect()
    oms.put(queue, b"<Inventory SKU='X' Quantity='5'/>", message_id="m-1")
    oms.close()
    port = Port()
    bridge = make_bridge(transport_from_url(TEST_AMQP_URL, prefetch=10), sessions, port, queues=[queue],
                         backout_queue=backout, reconnect_max_s=0.5)
    thread = running(bridge)
    try:
        [stalled] = wait_for(lambda: events(sessions, "system/bridge-stalled"), 10, "the stall event")
        assert stalled.payload["where"] == "services" and "InternalError" in stalled.payload["error"]
        assert stalled.payload["holding"] == 1
        time.sleep(1.5)
        assert thread.is_alive(), "the bridge exited on an InternalError"

        refuse_inbox(None)
        [row] = wait_for(lambda: inbox(sessions), 10, "the message to be stored")
        wait_for(lambda: port.sent, 10, "its task to be sent")
        assert row.transport_message_id == "m-1" and port.sent == [row.id]
        # Held, not handed back: delivered once, on the bridge's only connection.
        assert "x-delivery-count" not in row.headers and bridge.stats.connects == 1
    finally:
        stopped(bridge, thread)


# -- finding: two bridges broke latest-value-wins ---------------------------------------------------


def test_a_second_bridge_on_ibm_mq_stands_by_until_the_first_lets_go(sessions, queue_manager):
    def bridge():
        return make_bridge(IbmMqTransport(MQ_URL, mq=standin, exclusive_input=True), sessions, Port(), queues=[IN],
                           backout_queue=BACKOUT, standby_poll_s=0.2)

    first, second = bridge(), bridge()
    first_thread = running(first)
    try:
        queue_manager.add_message(IN, b"<m0/>")
        wait_for(lambda: first.stats.messages == 1, 10, "the first bridge to consume")
        second_thread = running(second)
        try:
            time.sleep(1)  # the second tries every 0.2 s
            for n in (1, 2):
                queue_manager.add_message(IN, b"<m%d/>" % n)
            wait_for(lambda: first.stats.messages == 3, 10, "the first bridge to consume the rest")
            assert second.stats.messages == 0 and second.stats.failed_attempts == 0 and second_thread.is_alive()
            stopped(first, first_thread)  # it goes: its queue handles close with its connection
            queue_manager.add_message(IN, b"<m3/>")
            wait_for(lambda: second.stats.messages == 1, 10, "the standby to take over")
        finally:
            stopped(second, second_thread)
    finally:
        if first_thread.is_alive():
            stopped(first, first_thread)
    assert [row.body for row in inbox(sessions)] == [b"<m0/>", b"<m1/>", b"<m2/>", b"<m3/>"]
