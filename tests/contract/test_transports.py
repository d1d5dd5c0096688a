"""One contract for every OMS transport: what the bridge relies on, checked against real brokers.

Subclassed per transport: RabbitMQ (here), a real IBM MQ queue manager (when
WHEEL_TEST_IBMMQ_URL is set), and the IBM MQ transport over a stand-in of IBM's library.
"""

from __future__ import annotations

import os
import uuid

import pytest

from bridge.transports import transport_from_url
from bridge.transports.base import Outgoing, Transport
from tests.support.services import TEST_AMQP_URL, delete_queues


class TransportContract:
    """Subclasses provide `make_transport()` and the `queues` fixture (three empty queues)."""

    def make_transport(self) -> Transport:
        raise NotImplementedError

    @pytest.fixture
    def transport(self, queues):
        transport = self.make_transport()
        transport.connect()
        transport.declare(queues)
        yield transport
        transport.close()

    def fresh(self, queues) -> Transport:
        transport = self.make_transport()
        transport.connect()
        transport.declare(queues)
        return transport

    def test_put_then_fetch_gives_the_body_and_the_message_id(self, transport, queues):
        transport.put(queues[0], b"<a>\x00\xff</a>", message_id="m-1")
        [delivery] = transport.fetch([queues[0]], max_messages=10, wait_s=5)
        assert delivery.body == b"<a>\x00\xff</a>" and delivery.queue == queues[0]
        assert delivery.message_id and not delivery.redelivered
        transport.commit([delivery])

    def test_an_empty_message_is_delivered_as_empty_bytes(self, transport, queues):
        # An OMS can put a message of no bytes at all; the bridge must store it (the worker then
        # says "message is empty"), not fail on it for ever.
        transport.put(queues[0], b"", message_id="m-empty")
        transport.put(queues[0], b"<after/>", message_id="m-after")
        deliveries = transport.fetch([queues[0]], max_messages=10, wait_s=5)
        deliveries += transport.fetch([queues[0]], max_messages=10, wait_s=1)
        assert [(d.body, type(d.body)) for d in deliveries] == [(b"", bytes), (b"<after/>", bytes)]
        transport.commit(deliveries)

    def test_message_ids_tell_messages_apart(self, transport, queues):
        transport.put(queues[0], b"same", message_id="m-1")
        transport.put(queues[0], b"same", message_id="m-2")
        deliveries = transport.fetch([queues[0]], max_messages=10, wait_s=5)
        deliveries += transport.fetch([queues[0]], max_messages=10, wait_s=1)
        assert len({d.message_id for d in deliveries}) == 2
        transport.commit(deliveries)

    def test_put_many_puts_every_message_in_order_with_its_id(self, transport, queues):
        # The publisher's batch: on AMQP the confirms are awaited together (one round trip).
        batch = [Outgoing(queues[i % 2], f"<m n='{i}'/>".encode(), f"WHEEL-OUTBOX-{i:011d}") for i in range(250)]
        transport.put_many(batch)
        transport.put_many([Outgoing(queues[0], b"<last/>", "m-last")])  # a second batch on the same transport
        got: dict[str, list[bytes]] = {queues[0]: [], queues[1]: []}
        while sum(len(v) for v in got.values()) < 251:
            deliveries = transport.fetch(queues[:2], max_messages=100, wait_s=5)
            assert deliveries, f"only {sum(len(v) for v in got.values())} of 251 messages arrived"
            for d in deliveries:
                got[d.queue].append(d.body)
            transport.commit(deliveries)
        assert got[queues[0]] == [m.body for m in batch if m.queue == queues[0]] + [b"<last/>"]
        assert got[queues[1]] == [m.body for m in batch if m.queue == queues[1]]

    def test_fetch_on_empty_queues_waits_then_returns_nothing(self, transport, queues):
        assert transport.fetch(queues, max_messages=10, wait_s=0.5) == []

    def test_fetch_takes_a_batch_across_queues(self, transport, queues):
        for n in range(5):
            transport.put(queues[n % 2], f"m{n}".encode(), message_id=f"id-{n}")
        got = []
        for _ in range(10):
            got += transport.fetch(queues[:2], max_messages=10, wait_s=1)
            if len(got) == 5:
                break
        assert sorted(d.body for d in got) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert {d.queue for d in got} == set(queues[:2])
        transport.commit(got)

    def test_fetch_never_returns_more_than_asked(self, transport, queues):
        for n in range(7):
            transport.put(queues[0], b"x", message_id=f"id-{n}")
        first = transport.fetch([queues[0]], max_messages=3, wait_s=5)
        assert 1 <= len(first) <= 3
        transport.commit(first)

    def test_commit_removes_for_good(self, transport, queues):
        transport.put(queues[0], b"once", message_id="m-1")
        deliveries = transport.fetch([queues[0]], max_messages=10, wait_s=5)
        transport.commit(deliveries)
        transport.close()
        other = self.fresh(queues)
        try:
            assert other.fetch([queues[0]], max_messages=10, wait_s=1) == []
        finally:
            other.close()

    def test_backout_returns_the_message_flagged_as_redelivered(self, transport, queues):
        transport.put(queues[0], b"again", message_id="m-1")
        [first] = transport.fetch([queues[0]], max_messages=10, wait_s=5)
        transport.backout([first])
        [second] = transport.fetch([queues[0]], max_messages=10, wait_s=5)
        assert second.body == b"again" and second.message_id == first.message_id
        assert second.redelivered
        if second.delivery_count is not None:
            assert second.delivery_count >= 1
        transport.commit([second])

    def test_a_lost_connection_returns_what_was_not_committed(self, transport, queues):
        transport.put(queues[0], b"in hand", message_id="m-1")
        [delivery] = transport.fetch([queues[0]], max_messages=10, wait_s=5)
        transport.close()  # as when the bridge dies with the message in hand
        other = self.fresh(queues)
        try:
            [again] = other.fetch([queues[0]], max_messages=10, wait_s=5)
            assert again.body == b"in hand" and again.message_id == delivery.message_id and again.redelivered
            other.commit([again])
        finally:
            other.close()

    def test_move_puts_on_the_backout_queue_and_removes_from_the_source(self, transport, queues):
        transport.put(queues[0], b"poison", message_id="m-1")
        [delivery] = transport.fetch([queues[0]], max_messages=10, wait_s=5)
        transport.move(delivery, queues[2], reason="could not be stored")
        moved = transport.get_one(queues[2], wait_s=5)
        assert moved is not None and moved.body == b"poison"
        assert transport.fetch([queues[0]], max_messages=10, wait_s=0.5) == []

    def test_depth_counts_the_messages_a_queue_holds(self, transport, queues):
        assert transport.depth(queues[2]) == 0
        for n in range(3):
            transport.put(queues[2], b"x", message_id=f"m-{n}")
        assert transport.depth(queues[2]) == 3
        assert transport.get_one(queues[2], wait_s=5) is not None
        assert transport.depth(queues[2]) == 2

    def test_exists_says_whether_a_queue_is_there_without_creating_it(self, transport, queues):
        assert transport.exists(queues[0])
        missing = f"TEST.MISSING.{uuid.uuid4().hex[:8]}"
        assert not transport.exists(missing)
        assert not transport.exists(missing)  # still not there: asking did not create it
        transport.put(queues[0], b"x", message_id="m-1")  # the connection still works after a refusal
        assert transport.exists(queues[0]) and transport.depth(queues[0]) == 1

    def test_get_one_takes_one_message(self, transport, queues):
        transport.put(queues[1], b"one", message_id="m-1")
        transport.put(queues[1], b"two", message_id="m-2")
        first = transport.get_one(queues[1], wait_s=5)
        second = transport.get_one(queues[1], wait_s=5)
        assert [first.body, second.body] == [b"one", b"two"]
        assert transport.get_one(queues[1], wait_s=0.2) is None


class TestAmqpTransport(TransportContract):
    """RabbitMQ, running on this machine."""

    def make_transport(self) -> Transport:
        return transport_from_url(TEST_AMQP_URL, prefetch=20)

    @pytest.fixture
    def queues(self):
        names = [f"TEST.CONTRACT.{n}.{uuid.uuid4().hex[:8]}" for n in range(3)]
        yield names
        delete_queues(TEST_AMQP_URL, names)

    def test_password_is_never_shown(self):
        assert "guest:guest" not in repr(self.make_transport())

    # -- RabbitMQ only ----------------------------------------------------------------------------

    def test_a_queue_that_exists_with_other_arguments_is_used_as_it_is(self, queues):
        import kombu

        with kombu.Connection(TEST_AMQP_URL) as connection:  # a classic queue, made by the OMS team
            kombu.Queue(queues[1], exchange="", routing_key=queues[1], durable=True)(connection.channel()).declare()
        transport = self.make_transport()
        transport.connect()
        try:
            transport.declare([queues[1]])  # PRECONDITION_FAILED on x-queue-type; then a passive declare
            transport.put(queues[1], b"kept", message_id="m-1")
            assert [d.body for d in transport.fetch([queues[1]], max_messages=10, wait_s=5)] == [b"kept"]
        finally:
            transport.close()

    def test_a_put_to_a_queue_deleted_since_it_was_declared_is_refused(self, transport, queues):
        transport.put(queues[0], b"one", message_id="m-1")  # declares the queue, once
        delete_queues(TEST_AMQP_URL, [queues[0]])  # say, by an operator
        with pytest.raises(Exception, match="no queue of that name"):
            transport.put(queues[0], b"two", message_id="m-2")  # mandatory: returned, not confirmed and lost
        transport.put(queues[0], b"three", message_id="m-3")  # declares it again
        assert [d.body for d in transport.fetch([queues[0]], max_messages=10, wait_s=5)] == [b"three"]

    def test_a_put_many_to_a_queue_deleted_since_it_was_declared_is_refused(self, transport, queues):
        transport.put_many([Outgoing(queues[0], b"one", "m-1")])  # declares the queue, once
        delete_queues(TEST_AMQP_URL, [queues[0]])
        with pytest.raises(Exception, match="no queue of that name"):
            transport.put_many([Outgoing(queues[1], b"kept", "m-2"), Outgoing(queues[0], b"two", "m-3")])
        transport.put_many([Outgoing(queues[0], b"three", "m-4")])  # declares it again
        assert [d.body for d in transport.fetch([queues[0]], max_messages=10, wait_s=5)] == [b"three"]

    def test_put_many_headers_and_message_ids_reach_the_consumer(self, transport, queues):
        transport.put_many([Outgoing(queues[0], b"<o/>", "WHEEL-OUTBOX-00000000007", {"wheel-kind": "order"})])
        [delivery] = transport.fetch([queues[0]], max_messages=10, wait_s=5)
        assert delivery.message_id == "WHEEL-OUTBOX-00000000007" and delivery.headers.get("wheel-kind") == "order"
        transport.commit([delivery])

    def oms_transport(self, queues, **options):
        from bridge.transports.amqp import AmqpTransport, consumed_queue_arguments

        arguments = {queues[0]: consumed_queue_arguments(queues[2], **options.pop("limit", {}))}
        transport = AmqpTransport(TEST_AMQP_URL, prefetch=3, queue_arguments=arguments, **options)
        transport.connect()
        transport.declare([queues[2], queues[0]])
        return transport

    def test_a_second_consumer_of_an_oms_queue_stands_by_then_takes_over_in_queue_order(self, queues):
        active, standby = self.oms_transport(queues, strict_queues=True), self.oms_transport(queues, strict_queues=True)
        try:
            for n in range(6):
                active.put(queues[0], f"m{n}".encode(), message_id=f"id-{n}")
            first = active.fetch([queues[0]], max_messages=10, wait_s=5)
            assert standby.fetch([queues[0]], max_messages=10, wait_s=1) == []  # a single active consumer
            active.commit(first[:1])
            active.close()  # it dies with the rest of what it was sent, unacknowledged
            taken = []
            for _ in range(20):
                batch = standby.fetch([queues[0]], max_messages=10, wait_s=1)
                standby.commit(batch)
                taken += batch
                if len(taken) >= 5:
                    break
            assert [d.body for d in taken] == [b"m1", b"m2", b"m3", b"m4", b"m5"]
        finally:
            active.close()
            standby.close()

    def test_a_message_delivered_past_the_limit_goes_to_the_backout_queue(self, queues):
        transport = self.oms_transport(queues, limit={"delivery_limit": 2})
        try:
            transport.put(queues[0], b"poison", message_id="p-1")
            for _ in range(3):  # each return counts a delivery
                batch = transport.fetch([queues[0]], max_messages=10, wait_s=2)
                transport.backout(batch)
            dead = transport.get_one(queues[2], wait_s=5)
            assert dead is not None and dead.body == b"poison" and dead.message_id == "p-1"
            assert dead.headers["x-first-death-reason"] == "delivery_limit"
            assert transport.fetch([queues[0]], max_messages=10, wait_s=0.5) == []
        finally:
            transport.close()

    def test_an_oms_queue_with_other_arguments_is_refused_with_what_to_do(self, queues):
        from bridge.transports.amqp import QueueArgumentsMismatch

        earlier = self.make_transport()  # as an earlier Wheel declared it: quorum, nothing more
        earlier.connect()
        earlier.declare([queues[0]])
        earlier.close()
        with pytest.raises(QueueArgumentsMismatch, match="--accept-existing-queues") as exc:
            self.oms_transport(queues, strict_queues=True)
        assert "x-single-active-consumer" in str(exc.value) and queues[0] in str(exc.value)
        tool = self.oms_transport(queues)  # a tool putting on it (or the bridge with the flag) uses it as it is
        try:
            tool.put(queues[0], b"x", message_id="m-1")
        finally:
            tool.close()


IBMMQ_URL = os.environ.get("WHEEL_TEST_IBMMQ_URL")


@pytest.mark.skipif(
    not IBMMQ_URL,
    reason="needs a real IBM MQ queue manager: set WHEEL_TEST_IBMMQ_URL "
    "(e.g. ibmmq://app:passw0rd@localhost:1414/QM1?channel=DEV.APP.SVRCONN, with `docker compose up ibmmq`) "
    "and install IBM's MQ client library and `pip install .[ibmmq]`",
)
class TestIbmMqTransport(TransportContract):
    """A real IBM MQ queue manager; its developer image defines DEV.QUEUE.1 to 3."""

    def make_transport(self) -> Transport:
        return transport_from_url(IBMMQ_URL)

    @pytest.fixture
    def queues(self):
        names = ["DEV.QUEUE.1", "DEV.QUEUE.2", "DEV.QUEUE.3"]
        drain = self.fresh(names)
        try:
            for name in names:
                while drain.get_one(name, wait_s=0.1) is not None:
                    pass
        finally:
            drain.close()
        return names


class TestIbmMqTransportOverStandIn(TransportContract):
    """The IBM MQ transport's own logic against a stand-in of IBM's `ibmmq` library (which needs
    IBM's MQ client, not installable here). It checks our syncpoint handling, not IBM MQ itself."""

    @pytest.fixture
    def queues(self):
        from tests.unit import ibmmq_standin as standin

        names = ["DEV.QUEUE.1", "DEV.QUEUE.2", "DEV.QUEUE.3"]
        standin.listen(standin.QueueManagerServer("QM1", names, users={"app": "passw0rd"}), "localhost(1414)")
        yield names
        standin.reset()

    def make_transport(self) -> Transport:
        from bridge.transports.ibmmq import IbmMqTransport
        from tests.unit import ibmmq_standin as standin

        return IbmMqTransport("ibmmq://app:passw0rd@localhost:1414/QM1?channel=DEV.APP.SVRCONN", mq=standin)
