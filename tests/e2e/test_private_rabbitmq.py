"""The private RabbitMQ the chaos run stops and starts (tests/support/private.py): its own node and
port, a message on a quorum queue kept across a stop and a start, and the shared broker untouched."""

from __future__ import annotations

import kombu
import pytest

from bridge.transports.amqp import AmqpTransport
from tests.support.private import PrivateRabbitMQ
from tests.support.services import TEST_AMQP_URL

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_a_private_node_keeps_its_messages_across_a_restart_and_leaves_the_shared_one_alone(tmp_path):
    rabbit = PrivateRabbitMQ(tmp_path)
    try:
        rabbit.start()
        assert str(rabbit.port) != "5672" and rabbit.node.startswith("wheel-chaos-")
        transport = AmqpTransport(rabbit.url())
        transport.connect()
        transport.declare(["CHAOS.TRY"])
        transport.put("CHAOS.TRY", b"<kept/>", message_id="m-1")
        transport.close()

        rabbit.stop()
        assert not rabbit.process.alive()
        with pytest.raises(Exception):  # noqa: B017 - refused: whatever kombu calls it
            kombu.Connection(rabbit.url(), connect_timeout=2).connect()
        # The shared broker still answers.
        with kombu.Connection(TEST_AMQP_URL, connect_timeout=5) as shared:
            shared.connect()

        rabbit.start()
        transport = AmqpTransport(rabbit.url())
        transport.connect()
        delivery = transport.get_one("CHAOS.TRY", wait_s=5)
        assert delivery is not None and delivery.body == b"<kept/>" and delivery.message_id == "m-1"
        transport.close()
    finally:
        rabbit.destroy()
