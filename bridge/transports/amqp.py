"""The AMQP transport (RabbitMQ and other AMQP 0.9.1 brokers), through kombu.

Messages are consumed with manual acks: a delivery leaves its queue only when acked (commit);
a nack with requeue, or a lost connection, returns it. Queues this transport creates are
durable quorum queues, whose `x-delivery-count` header counts deliveries across bridge crashes,
so a poison message is recognised even when it kills the process that reads it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from typing import Any

import amqp
import kombu
from kombu.message import Message

from bridge.transports.base import Delivery

QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}


class AmqpTransport:
    def __init__(self, url: str, *, prefetch: int = 200, heartbeat: int = 30):
        self._url = url
        self._prefetch = prefetch
        self._heartbeat = heartbeat
        self._connection: kombu.Connection | None = None
        self._channel = None
        self._consumers: list[kombu.Consumer] = []
        self._consuming: tuple[str, ...] = ()
        self._buffer: list[Delivery] = []
        self._declared: set[str] = set()
        probe = kombu.Connection(url)
        self.connection_errors: tuple[type[BaseException], ...] = tuple(
            set(probe.connection_errors) | set(probe.channel_errors) | {ConnectionError, OSError}
        )

    def __repr__(self) -> str:
        return f"AmqpTransport({kombu.Connection(self._url).as_uri()})"  # as_uri masks the password

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        self.close()
        self._connection = kombu.Connection(
            self._url,
            heartbeat=self._heartbeat,
            connect_timeout=10,
            transport_options={"confirm_publish": True},
        )
        self._connection.ensure_connection(max_retries=1)
        self._channel = self._connection.channel()
        self._channel.basic_qos(0, self._prefetch, False)
        self._declared.clear()

    def close(self) -> None:
        self._consumers = []
        self._consuming = ()
        self._buffer = []
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.release()  # unacked deliveries return to their queues
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone
                pass

    def declare(self, queues: Sequence[str]) -> None:
        for name in queues:
            if name in self._declared:
                continue
            try:
                self._queue(name).bind(self._channel).declare()
            except amqp.exceptions.PreconditionFailed:
                # The queue exists with other arguments (say, a classic queue made by the OMS
                # team): use it as it is. The failed declare closed the channel; open a new one.
                self._channel = self._connection.channel()
                self._channel.basic_qos(0, self._prefetch, False)
                self._queue(name).bind(self._channel).declare(passive=True)
            self._declared.add(name)

    @staticmethod
    def _queue(name: str) -> kombu.Queue:
        return kombu.Queue(name, exchange="", routing_key=name, durable=True, queue_arguments=QUEUE_ARGUMENTS)

    # -- consuming ----------------------------------------------------------------------------

    def _ensure_consumer(self, queues: Sequence[str]) -> None:
        if self._consumers and self._consuming == tuple(queues):
            return
        self.declare(queues)
        for consumer in self._consumers:
            consumer.cancel()
        self._consumers = []
        for name in queues:
            consumer = kombu.Consumer(
                self._channel,
                queues=[self._queue(name)],
                # Raw messages: kombu never decodes the bodies.
                on_message=lambda message, name=name: self._on_message(message, name),
                no_ack=False,
                auto_declare=False,
            )
            consumer.consume()
            self._consumers.append(consumer)
        self._consuming = tuple(queues)

    def _on_message(self, message: Message, queue: str) -> None:
        properties = message.properties or {}
        headers = dict(message.headers or {})
        count = headers.get("x-delivery-count")
        self._buffer.append(
            Delivery(
                queue=queue,
                body=message.body if isinstance(message.body, bytes) else bytes(message.body),
                message_id=properties.get("message_id") or None,
                redelivered=bool(message.delivery_info.get("redelivered")) or bool(count),
                delivery_count=int(count) if count is not None else None,
                headers=headers,
                handle=message,
            )
        )

    def fetch(self, queues: Sequence[str], *, max_messages: int, wait_s: float) -> list[Delivery]:
        self._ensure_consumer(queues)
        deadline = time.monotonic() + wait_s
        # kombu sends heartbeats only when asked: without this an idle bridge is dropped by the broker.
        self._connection.heartbeat_check()
        while not self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            try:
                self._connection.drain_events(timeout=min(remaining, 1.0))
            except socket.timeout:
                continue
        # Take what else has already arrived, without waiting for more.
        while len(self._buffer) < max_messages:
            try:
                self._connection.drain_events(timeout=0.002)
            except socket.timeout:
                break
        batch, self._buffer = self._buffer[:max_messages], self._buffer[max_messages:]
        return batch

    def commit(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            delivery.handle.ack()

    def backout(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            delivery.handle.reject(requeue=True)

    # -- putting ------------------------------------------------------------------------------

    def put(self, queue: str, body: bytes, *, message_id: str, headers: dict[str, Any] | None = None) -> None:
        if self._connection is None:
            self.connect()
        self.declare([queue])
        producer = kombu.Producer(self._channel, exchange=kombu.Exchange(""), auto_declare=False)
        # With publisher confirms on, publish returns once the broker has the message.
        producer.publish(
            body,
            routing_key=queue,
            serializer=None,
            content_type="application/xml",
            content_encoding="binary",
            delivery_mode=2,
            message_id=message_id,
            headers=headers or {},
            retry=False,
        )

    def move(self, delivery: Delivery, to_queue: str, *, reason: str) -> None:
        # AMQP has no unit of work spanning a publish and an ack: publish (confirmed) first,
        # then ack. A crash in between leaves the message on both queues, never on neither.
        headers = {k: v for k, v in delivery.headers.items() if not k.startswith("x-")}
        headers.update({"wheel-backout-reason": reason[:1000], "wheel-source-queue": delivery.queue})
        self.put(to_queue, delivery.body, message_id=delivery.message_id or "", headers=headers)
        delivery.handle.ack()

    def get_one(self, queue: str, *, wait_s: float) -> Delivery | None:
        if self._connection is None:
            self.connect()
        self.declare([queue])
        deadline = time.monotonic() + wait_s
        while True:
            message = self._queue(queue).bind(self._channel).get(no_ack=False)
            if message is not None:
                self._on_message(message, queue)
                delivery = self._buffer.pop()
                message.ack()
                return delivery
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
