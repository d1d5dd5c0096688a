"""Publishing the outbox to the OMS queues (contract 4), on the real Postgres and RabbitMQ."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bridge.transports import transport_from_url
from bridge.transports.base import Outgoing
from tests.support.services import TEST_AMQP_URL, delete_queues
from wheel.services import outbox


def add_row(sessions, queue: str, n: int) -> None:
    with sessions.begin() as session:
        session.execute(
            text("INSERT INTO outbox (kind, channel_id, order_id, queue, message_id, body) "
                 "VALUES ('order', 'UA', :order, :queue, :mid, :body)"),
            {"order": f"O-{n}", "queue": queue, "mid": f"WHEEL-OUTBOX-{n:011d}", "body": b"<Order/>"},
        )


def sent(sessions) -> list[str]:
    with sessions() as session:
        return list(session.execute(text("SELECT order_id FROM outbox WHERE sent_at IS NOT NULL ORDER BY id")).scalars())


@pytest.mark.parametrize("batched", [False, True], ids=["put-each", "put-many"])
def test_a_row_put_on_a_queue_deleted_since_it_was_declared_stays_pending(sessions, settings, batched):
    queue = settings.queue_orders
    transport = transport_from_url(TEST_AMQP_URL)
    transport.connect()
    # put-many: the worker's outlet (workers/bootstrap.py), whose batch waits for its confirms together.
    outlet = (outbox.Outlet(put=transport.put, commit=lambda: transport.commit([]),
                            put_many=lambda batch: transport.put_many([Outgoing(m.queue, m.body, m.message_id, m.headers)
                                                                      for m in batch]))
              if batched else outbox.Outlet(put=transport.put, commit=lambda: transport.commit([])))
    try:
        add_row(sessions, queue, 1)
        assert outbox.publish_pending(sessions, outlet, batch_size=10).sent == 1
        delete_queues(TEST_AMQP_URL, [queue])  # the OMS team drops the queue; the publisher's connection stays
        add_row(sessions, queue, 2)
        with pytest.raises(Exception, match="no queue of that name"):
            outbox.publish_pending(sessions, outlet, batch_size=10)
        assert sent(sessions) == ["O-1"], "O-2 was marked sent, though the broker discarded it"
        # The next run (the task retries) declares the queue again and puts it.
        assert outbox.publish_pending(sessions, outlet, batch_size=10).sent == 1
        assert [d.message_id for d in [transport.get_one(queue, wait_s=5)]] == ["WHEEL-OUTBOX-00000000002"]
    finally:
        transport.close()


def test_a_batch_goes_out_in_id_order_with_its_message_ids_and_is_marked_sent(sessions, settings):
    queue = settings.queue_orders
    transport = transport_from_url(TEST_AMQP_URL)
    transport.connect()
    outlet = outbox.Outlet(put=transport.put, commit=lambda: transport.commit([]),
                           put_many=lambda batch: transport.put_many([Outgoing(m.queue, m.body, m.message_id, m.headers)
                                                                     for m in batch]))
    try:
        for n in range(1, 26):
            add_row(sessions, queue, n)
        result = outbox.publish_pending(sessions, outlet, batch_size=10)
        assert (result.sent, result.batches) == (25, 3)
        assert sent(sessions) == [f"O-{n}" for n in range(1, 26)]
        got = [transport.get_one(queue, wait_s=5) for _ in range(25)]
        assert [d.message_id for d in got] == [f"WHEEL-OUTBOX-{n:011d}" for n in range(1, 26)]
        assert transport.get_one(queue, wait_s=0.5) is None
    finally:
        transport.close()
