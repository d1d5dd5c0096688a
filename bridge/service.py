"""The bridge's consume loop (DESIGN.md contract 1).

For each batch taken off the OMS queues: store every message in the inbox (a redelivery is a
no-op), send a task for each message still waiting for a worker, and only then commit the gets.
A crash anywhere in between leaves the messages on their queues, to be delivered again.

A message that cannot be stored goes back to its queue; after `max_attempts` deliveries it is
moved to the backout queue with a `system/message-backed-out` event, and consuming goes on. When
the broker, Postgres or Redis goes away, the loop reconnects with backoff and jitter.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy.exc
from sqlalchemy.orm import Session, sessionmaker

from bridge.transports.base import Delivery, Transport
from wheel.events import NewEvent, record
from wheel.services.inbox import IncomingMessage, StoredMessage, store_batch

log = logging.getLogger("wheel.bridge")

# Failures that belong to one message, not to the services around it.
MESSAGE_ERRORS = (sqlalchemy.exc.DataError, sqlalchemy.exc.IntegrityError)


class Backoff:
    """Exponential backoff with full jitter."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0):
        self.base_s, self.cap_s, self.failures = base_s, cap_s, 0

    def next(self) -> float:
        self.failures += 1
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0


@dataclass
class BridgeStats:
    batches: int = 0
    messages: int = 0
    new: int = 0
    duplicates: int = 0
    backed_out: int = 0
    reconnects: int = 0
    started: float = field(default_factory=time.monotonic)


class Bridge:
    def __init__(
        self,
        transport: Transport,
        *,
        queues: Sequence[str],
        backout_queue: str,
        sessions: sessionmaker[Session],
        send_process: Callable[[list[int]], None],
        send_alert: Callable[[int], None],
        recoverable: tuple[type[BaseException], ...],
        batch_size: int = 100,
        max_attempts: int = 5,
        reconnect_max_s: float = 30.0,
        stop: threading.Event | None = None,
    ):
        self.transport = transport
        self.queues = list(queues)
        self.backout_queue = backout_queue
        self.sessions = sessions
        self.send_process = send_process
        self.send_alert = send_alert
        self.recoverable = tuple(set(recoverable) | set(transport.connection_errors))
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff = Backoff(cap_s=reconnect_max_s)
        self.stop = stop or threading.Event()
        self.stats = BridgeStats()
        # Failed deliveries per message, for brokers that do not count them (classic AMQP queues).
        self._failures: dict[str, int] = {}

    def run(self) -> BridgeStats:
        while not self.stop.is_set():
            try:
                self.transport.connect()
                self.transport.declare([*self.queues, self.backout_queue])
                log.info("bridge consuming %s through %r", ", ".join(self.queues), self.transport)
                self.backoff.reset()
                self._consume()
            except self.recoverable as exc:
                self.stats.reconnects += 1
                delay = self.backoff.next()
                log.warning("bridge lost a service (%s: %s); reconnecting in %.1fs", type(exc).__name__, exc, delay)
                self.transport.close()
                self.stop.wait(delay)
        self.transport.close()
        log.info("bridge stopped: %d messages (%d new, %d redelivered), %d backed out",
                 self.stats.messages, self.stats.new, self.stats.duplicates, self.stats.backed_out)
        return self.stats

    def _consume(self) -> None:
        last_report = time.monotonic()
        while not self.stop.is_set():
            batch = self.transport.fetch(self.queues, max_messages=self.batch_size, wait_s=1.0)
            if batch:
                self.handle(batch)
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                log.info("bridge: %d messages so far (%d new)", self.stats.messages, self.stats.new)

    def handle(self, batch: list[Delivery]) -> None:
        """Store, send, commit: in that order, so that a crash between any two redelivers."""
        try:
            with self.sessions.begin() as session:
                stored = store_batch(session, [_incoming(d) for d in batch])
        except MESSAGE_ERRORS:
            # Something in the batch cannot be stored: find which, one message at a time.
            for delivery in batch:
                self._handle_one(delivery)
            return
        self._send(stored)
        self.transport.commit(batch)
        self._count(batch, stored)

    def _handle_one(self, delivery: Delivery) -> None:
        try:
            with self.sessions.begin() as session:
                stored = store_batch(session, [_incoming(delivery)])
        except MESSAGE_ERRORS as exc:
            self._failed(delivery, exc)
            return
        self._send(stored)
        self.transport.commit([delivery])
        self._count([delivery], stored)

    def _send(self, stored: list[StoredMessage]) -> None:
        pending = [message.inbox_id for message in stored if message.pending]
        if pending:
            self.send_process(pending)

    def _count(self, batch: list[Delivery], stored: list[StoredMessage]) -> None:
        self.stats.batches += 1
        self.stats.messages += len(batch)
        created = sum(1 for s in stored if s.created)
        self.stats.new += created
        self.stats.duplicates += len(batch) - created

    def _failed(self, delivery: Delivery, exc: Exception) -> None:
        key = delivery.message_id or hashlib.sha256(delivery.body).hexdigest()
        self._failures[key] = self._failures.get(key, 0) + 1
        attempts = max(self._failures[key], (delivery.delivery_count or 0) + 1)
        cause = getattr(exc, "orig", None) or exc
        error = f"{type(cause).__name__}: {(str(cause).splitlines() or [''])[0]}"
        if attempts < self.max_attempts:
            log.warning("message on %s could not be stored (attempt %d of %d): %s",
                        delivery.queue, attempts, self.max_attempts, error)
            self.transport.backout([delivery])
            return
        reason = f"could not be stored after {attempts} attempts: {error}"
        self.transport.move(delivery, self.backout_queue, reason=reason)
        self._failures.pop(key, None)
        self.stats.backed_out += 1
        with self.sessions.begin() as session:
            event = record(
                session,
                NewEvent(
                    type="system",
                    name="system/message-backed-out",
                    level="error",
                    payload={
                        "error": f"message moved to {self.backout_queue}: {reason}",
                        "queue": delivery.queue,
                        "transport_message_id": (delivery.message_id or "").replace("\x00", "\\x00"),
                        "bytes": len(delivery.body),
                        "attempts": attempts,
                        "backout_queue": self.backout_queue,
                    },
                ),
            )
        self.send_alert(event.id)


def _incoming(delivery: Delivery) -> IncomingMessage:
    return IncomingMessage(
        queue=delivery.queue,
        body=delivery.body,
        message_id=delivery.message_id,
        redelivered=delivery.redelivered,
        headers={k: v for k, v in delivery.headers.items() if isinstance(k, str)},
    )
