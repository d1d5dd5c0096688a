"""The AMQP transport (RabbitMQ and other AMQP 0.9.1 brokers), through kombu.

Messages are consumed with manual acks: a delivery leaves its queue only when acked (commit);
a nack with requeue, or a lost connection, returns it. Queues this transport creates are
durable quorum queues, whose `x-delivery-count` header counts deliveries across bridge crashes,
so a poison message is recognised even when it kills the process that reads it.

The OMS queues the bridge consumes get more (`consumed_queue_arguments`): a single active
consumer, so that a second bridge is a standby rather than a second reader that would reorder
the queue (the version of an OMS value is its arrival order in the inbox); and a delivery limit
with a dead-letter route to the backout queue, so that the broker never drops a message.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import amqp
import kombu
from kombu.message import Message

from bridge.transports.base import Delivery, Outgoing

log = logging.getLogger(__name__)

QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}

# Deliveries of one message before the broker dead-letters it. RabbitMQ 4.0 and later give every
# quorum queue a delivery limit of 20 and then *drop* the message unless a dead-letter exchange
# is set ("Starting with RabbitMQ 4.0, the delivery limit for quorum queues defaults to 20",
# https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling; rabbitmq/rabbitmq-website,
# versioned_docs/version-4.0/quorum-queues/index.md). Setting it explicitly gives RabbitMQ 3.x
# (which has no default limit) the same cap, and keeps a message that the bridge hands back
# near the head of its queue: without a limit RabbitMQ returns a rejected message to the *back*
# of a quorum queue (same page, "Repeatedly Requeued Deliveries"; seen on 3.10.8 here), which
# would reorder it. The bridge moves a message it cannot store after WHEEL_BRIDGE_MAX_ATTEMPTS
# (5), well below this: the limit only catches a message that kills the bridge each time.
DELIVERY_LIMIT = 20

# How long put_many waits for the broker to confirm what it put.
CONFIRM_TIMEOUT_S = 30.0


def consumed_queue_arguments(dead_letter_queue: str, delivery_limit: int = DELIVERY_LIMIT) -> dict[str, Any]:
    """The arguments of an OMS queue the bridge consumes.

    - `x-single-active-consumer`: the broker delivers to one consumer at a time; another waits,
      and takes over (in queue order, with what the first had not acked) when the first goes
      (https://www.rabbitmq.com/docs/consumers#single-active-consumer).
    - `x-delivery-limit` with `x-dead-letter-exchange` "" (the default exchange) and
      `x-dead-letter-routing-key` the backout queue: a message delivered too often goes there.
    - `x-dead-letter-strategy` at-least-once, which needs `x-overflow` reject-publish: the queue
      keeps a dead-lettered message until the backout queue has confirmed it, where the default
      (at-most-once) may lose it on the way (https://www.rabbitmq.com/docs/quorum-queues#dead-lettering,
      "Activating at-least-once dead-lettering"; RabbitMQ 3.10 and later).
    """
    return {
        **QUEUE_ARGUMENTS,
        "x-single-active-consumer": True,
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


class QueueArgumentsMismatch(RuntimeError):
    """An OMS queue the bridge consumes exists with other arguments than it declares."""

    def __init__(self, queue: str, arguments: Mapping[str, Any], detail: str) -> None:
        self.queue = queue
        wanted = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        super().__init__(
            f"OMS queue {queue!r} exists with other arguments than Wheel declares for a queue the bridge "
            f"consumes ({wanted}); the broker said: {detail}. RabbitMQ cannot change a queue's arguments "
            "in place. Wheel needs x-single-active-consumer so that a second bridge waits as a standby "
            "instead of taking messages out of order, and the delivery limit with the dead-letter route so "
            "that the broker moves a message delivered too often to the backout queue instead of dropping "
            "it. Until the queue is fixed this bridge consumes nothing (the messages wait on their queues). "
            "To fix it: pause the OMS's publishing to the queue, move its messages to a holding queue (a "
            "shovel, or the management UI's move), delete the queue, start the bridge (it declares the "
            "queue), move the messages back, resume publishing. Or start the bridge with "
            "--accept-existing-queues to consume the queue as it is, which is safe only while exactly one "
            "bridge runs."
        )


class Unroutable(RuntimeError):
    """The broker returned a published message: no queue took it (the queue is gone)."""


class AmqpTransport:
    def __init__(
        self,
        url: str,
        *,
        prefetch: int = 200,
        heartbeat: int = 30,
        queue_arguments: Mapping[str, Mapping[str, Any]] | None = None,
        strict_queues: bool = False,
    ):
        """`queue_arguments`: the arguments to declare some queues with (others get
        QUEUE_ARGUMENTS). `strict_queues`: a queue named there that exists with other arguments
        is an error (the bridge); otherwise it is used as it is (tools, the OMS stand-in)."""
        self._url = url
        self._prefetch = prefetch
        self._heartbeat = heartbeat
        self._queue_arguments = {name: dict(args) for name, args in (queue_arguments or {}).items()}
        self._strict = strict_queues
        self._returned: list[tuple[str, str]] = []
        self._connection: kombu.Connection | None = None
        self._channel = None
        self._consumers: list[kombu.Consumer] = []
        self._consuming: tuple[str, ...] = ()
        self._buffer: list[Delivery] = []
        self._declared: set[str] = set()
        self._confirming: _Confirms | None = None
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
        self._open_channel()
        self._declared.clear()

    def _open_channel(self) -> None:
        self._channel = self._connection.channel()
        self._channel.basic_qos(0, self._prefetch, False)
        # A mandatory message no queue takes comes back as basic.return, before its confirm
        # (https://www.rabbitmq.com/docs/confirms#when-publishes-are-confirmed): note it here, so
        # that put raises instead of calling the discarded message put.
        self._channel.events["basic_return"].add(self._on_return)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self._returned.append((routing_key, str(exc)))

    def close(self) -> None:
        self._consumers = []
        self._consuming = ()
        self._buffer = []
        connection, self._connection, self._channel = self._connection, None, None
        self._confirming = None
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
            except amqp.exceptions.PreconditionFailed as exc:
                # The queue exists with other arguments (a queue made by an earlier Wheel, or a
                # classic queue made by the OMS team). The failed declare closed the channel.
                self._open_channel()
                if self._strict and name in self._queue_arguments:
                    raise QueueArgumentsMismatch(name, self._queue_arguments[name], str(exc)) from exc
                if name in self._queue_arguments:
                    log.warning("OMS queue %s exists with other arguments than Wheel declares (%s): used as it "
                                "is; without a single active consumer, run only one bridge", name, exc)
                self._queue(name).bind(self._channel).queue_declare(passive=True)
            self._declared.add(name)

    def depth(self, queue: str) -> int:
        # A passive declare answers the queue's ready messages, and fails if it does not exist
        # (https://www.rabbitmq.com/docs/queues#properties): a missing backout queue holds nothing.
        try:
            _, count, _ = self._channel.queue_declare(queue=queue, passive=True)
        except amqp.exceptions.NotFound:
            self._open_channel()
            return 0
        return int(count)

    def exists(self, queue: str) -> bool:
        # A passive declare never creates the queue; on a missing one the broker closes the channel.
        try:
            self._channel.queue_declare(queue=queue, passive=True)
        except amqp.exceptions.NotFound:
            self._open_channel()
            return False
        return True

    def _queue(self, name: str) -> kombu.Queue:
        arguments = self._queue_arguments.get(name, QUEUE_ARGUMENTS)
        return kombu.Queue(name, exchange="", routing_key=name, durable=True, queue_arguments=arguments)

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
        body = message.body
        if isinstance(body, str):
            # py-amqp leaves a message with no body frame (an empty message) with its default body,
            # the str '' (amqp/basic_message.py, Message.__init__): bytes('') would raise, and the
            # bridge would fail on that message for ever.
            body = body.encode("utf-8")
        self._buffer.append(
            Delivery(
                queue=queue,
                body=body if isinstance(body, bytes) else bytes(body),
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

    def keepalive(self) -> None:
        """Send a heartbeat when one is due, and read what the broker sent (its heartbeats, and
        deliveries, which join the buffer for the next fetch): without reading, kombu would take
        the broker's silence for a dead connection."""
        if self._connection is None:
            return
        self._connection.heartbeat_check()
        for _ in range(10_000):  # bounded by the prefetch: the broker sends no more than that
            try:
                self._connection.drain_events(timeout=0.002)
            except socket.timeout:
                return

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
        # With publisher confirms on, publish returns once the broker has the message; mandatory,
        # so that a message no queue takes (the queue was deleted after it was declared here)
        # comes back instead of being confirmed and discarded.
        self._returned.clear()
        producer.publish(
            body,
            routing_key=queue,
            serializer=None,
            content_type="application/xml",
            content_encoding="binary",
            delivery_mode=2,
            message_id=message_id,
            headers=headers or {},
            mandatory=True,
            retry=False,
        )
        if self._returned:
            (routing_key, reason), *_ = self._returned
            self._returned.clear()
            self._declared.discard(queue)  # declared again on the next put
            raise Unroutable(f"the broker returned the message put on {routing_key!r} ({reason}): no queue of "
                             "that name takes it (deleted since it was declared?); nothing was put")

    def put_many(self, messages: Sequence[Outgoing]) -> None:
        """Put the messages (persistent, mandatory) one after the other without waiting, then wait
        until the broker has confirmed every one of them (https://www.rabbitmq.com/docs/confirms#publisher-confirms:
        "the broker confirms messages as it handles them", several at a time with `multiple`).
        Returns only when all are confirmed; raises if one was refused (nack), returned (no queue
        took it) or not confirmed within CONFIRM_TIMEOUT_S, and then any of them may have been put.
        The same promise as a `put` of each, at one round trip for the lot instead of one each."""
        if not messages:
            return
        if self._connection is None:
            self.connect()
        self.declare(list(dict.fromkeys(m.queue for m in messages)))
        confirms = self._confirming
        if confirms is None:
            confirms = self._confirming = _Confirms(self._connection.channel())
        try:
            confirms.publish_all(messages)
        except BaseException:
            self._confirming = None  # a channel whose confirms are out of step is not used again
            try:
                confirms.channel.close()
            except Exception:  # noqa: BLE001 - broken already; the next put_many opens another
                pass
            raise
        if confirms.returned:
            returned = confirms.returned
            confirms.returned = []
            for routing_key, _ in returned:
                self._declared.discard(routing_key)  # declared again on the next put
            (routing_key, reason), *_ = returned
            raise Unroutable(f"the broker returned {len(returned)} message(s) put on {routing_key!r} ({reason}): no "
                             "queue of that name takes them (deleted since it was declared?)")

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


class _Confirms:
    """A channel of its own in confirm mode, and the delivery tags it has not had confirmed yet.
    The broker numbers the messages published on a confirm-mode channel 1, 2, ... and acks (or
    nacks) each, or all up to one with `multiple` (https://www.rabbitmq.com/docs/confirms#publisher-confirms-ordering)."""

    def __init__(self, channel: Any):
        self.channel = channel
        self.channel.confirm_select()
        self.sent = 0
        self.waiting: set[int] = set()
        self.refused: list[int] = []
        self.returned: list[tuple[str, str]] = []
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)

    def publish_all(self, messages: Sequence[Outgoing]) -> None:
        first = self.sent + 1
        for m in messages:
            message = amqp.Message(m.body, content_type="application/xml", content_encoding="binary", delivery_mode=2,
                                   message_id=m.message_id, application_headers=dict(m.headers or {}))
            # The channel's plain publish: kombu's confirm_publish option would wait for each confirm in turn.
            self.channel._basic_publish(message, exchange="", routing_key=m.queue, mandatory=True)
            self.sent += 1
            self.waiting.add(self.sent)
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        while self.waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the broker confirmed {self.sent - first + 1 - len(self.waiting)} of "
                                   f"{len(messages)} messages in {CONFIRM_TIMEOUT_S:g}s")
            self.channel.wait([amqp.spec.Basic.Ack, amqp.spec.Basic.Nack], timeout=left)
        if self.refused:
            refused, self.refused = self.refused, []
            raise amqp.exceptions.MessageNacked(f"the broker refused {len(refused)} message(s) (nack)")

    def _settle(self, tag: int, multiple: bool) -> list[int]:
        done = [t for t in self.waiting if t <= tag] if multiple else [tag] if tag in self.waiting else []
        self.waiting.difference_update(done)
        return done

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self.refused.extend(self._settle(tag, multiple))

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self.returned.append((routing_key, str(exc)))
