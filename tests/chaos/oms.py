"""Acting as the OMS in the chaos run: putting its messages, reading its orders and cancellations."""

from __future__ import annotations

import threading
import time

from bridge.transports import transport_for_settings
from bridge.transports.amqp import AmqpTransport
from tests.chaos.load import OmsMessage
from wheel.settings import Settings


class Oms:
    """Acting as the OMS: puts messages on its queues (again, under the same id, when the broker
    goes away mid-put) and reads the orders and cancellations queues."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.transport = None
        self.put_retries = 0

    def put(self, message: OmsMessage, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.transport is None:
                    self.transport = transport_for_settings(self.settings)
                    self.transport.connect()
                self.transport.put(self.settings.queue_for(message.kind), message.body, message_id=message.message_id)
                return
            except Exception:  # noqa: BLE001 - the broker is away: connect again and put it again
                self.put_retries += 1
                self.close()
                time.sleep(1)

    def close(self) -> None:
        if self.transport is not None:
            try:
                self.transport.close()
            except Exception:  # noqa: BLE001 - a connection the broker already cut
                pass
            self.transport = None

    def drain(self, queue: str) -> list:
        transport = AmqpTransport(self.settings.oms_url.get_secret_value())
        transport.connect()
        try:
            taken = []
            while (delivery := transport.get_one(queue, wait_s=2.0)) is not None:
                taken.append(delivery)
            return taken
        finally:
            transport.close()
