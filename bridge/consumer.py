"""The bridge's consume loop (docs/contracts.md, contract 1).

For each batch taken off the OMS queues: store every message in the inbox (a redelivery is a
no-op), send the messages still waiting for a worker on in tasks (`send_process`: one task per
chunk of them, workers/dispatch.py), note that the batch is about to be acknowledged, and only then
commit the gets. A crash anywhere in between leaves the messages on their queues, to be delivered
again.

When Postgres or Redis is unavailable, or anything else fails while a batch is in hand, the
bridge keeps the batch and its broker connection (answering heartbeats) and tries the batch
again after a backoff. It does not hand the messages back: each return counts a delivery, and a
quorum queue dead-letters a message past its delivery limit (RabbitMQ 4 drops it when no
dead-letter route is set). Only when the broker connection fails, or the broker or queue manager
refuses a call (say IBM MQ's MQRC_GET_INHIBITED), does the bridge close it and connect again,
after a backoff. The backoff starts again from its first step only once a batch has been handled
in full, and each step makes one attempt.

The bridge never exits on an error. It logs every failed attempt, records `system/bridge-stalled`
(with an alert) once per stall where the database takes it, and `system/bridge-resumed` when it
hands messages on again after a long stall.

A message that cannot be stored goes back to its queue; after `max_attempts` deliveries it is
moved to the backout queue with a `system/message-backed-out` event, and consuming goes on.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy.exc
from sqlalchemy.orm import Session, sessionmaker

from bridge.transports.base import ConsumerStandby, Delivery, Transport
from wheel.events import NewEvent, record
from wheel.logs import log_context
from wheel.services.inbox import IncomingMessage, StoredMessage, mark_acked, new_key, store_batch

log = logging.getLogger("wheel.bridge")

# Failures that belong to one message, not to the services around it.
MESSAGE_ERRORS = (sqlalchemy.exc.DataError, sqlalchemy.exc.IntegrityError)
# Postgres does not answer: nothing can be recorded about it until it does.
DATABASE_UNREACHABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
# A service that went away (Postgres, Redis, the broker) gets an event once the stall has lasted
# this long; any other failure gets one at once.
STALL_EVENT_AFTER_S = 10.0
# How often the bridge answers the broker's heartbeats while it waits with a batch in hand.
KEEPALIVE_S = 1.0
# How often a standby tries again for queues another bridge holds (IBM MQ exclusive input).
STANDBY_POLL_S = 5.0


class Backoff:
    """Exponential backoff with equal jitter: step n waits between half and all of
    min(cap, base x 2^(n-1)), so no attempt follows the one before at once."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0):
        self.base_s, self.cap_s, self.failures = base_s, cap_s, 0

    def next(self) -> float:
        self.failures += 1
        ceiling = min(self.cap_s, self.base_s * 2 ** (self.failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class BridgeStats:
    batches: int = 0
    messages: int = 0
    new: int = 0
    duplicates: int = 0
    backed_out: int = 0
    # Broker connections opened, and how many of them were reconnections.
    connects: int = 0
    reconnects: int = 0
    # Attempts that failed (each followed by a backoff step).
    failed_attempts: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Stall:
    """From the first failed attempt to the next batch handled (or, for the broker, fetch)."""

    started: float
    where: str  # "broker" or "services"
    error: str
    attempts: int = 0
    recorded: bool = False
    # The stall's alert, when it waits for the stall to end (Redis, which carries alerts, may be
    # what is down).
    alert_event_id: int | None = None


class _TransportFailed(Exception):
    """A transport call failed: the connection is closed, and the messages in hand go back."""

    def __init__(self, cause: Exception):
        super().__init__(str(cause))
        self.cause = cause


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
        recoverable: tuple[type[BaseException], ...] = (),
        batch_size: int = 100,
        max_attempts: int = 5,
        reconnect_max_s: float = 30.0,
        standby_poll_s: float = STANDBY_POLL_S,
        stop: threading.Event | None = None,
    ):
        """`recoverable`: errors that mean a service went away and will be back (Postgres, Redis,
        the broker's connection); a stall made of them is worth an event only once it has lasted
        STALL_EVENT_AFTER_S. Every other error is retried all the same, with an event at once."""
        self.transport = transport
        self.queues = list(queues)
        self.backout_queue = backout_queue
        self.sessions = sessions
        self.send_process = send_process
        self.send_alert = send_alert
        self.recoverable = tuple(set(recoverable) | set(DATABASE_UNREACHABLE) | set(transport.connection_errors))
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff = Backoff(cap_s=reconnect_max_s)
        self.standby_poll_s = standby_poll_s
        self.stop = stop or threading.Event()
        self.stats = BridgeStats()
        self._stall: _Stall | None = None
        # Failed deliveries per message, for brokers that do not count them (classic AMQP queues).
        self._failures: dict[str, int] = {}

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> BridgeStats:
        while not self.stop.is_set():
            try:
                self._connect()
                self._consume()
            except Exception as exc:  # noqa: BLE001 - the bridge stops on a signal only; it says why, and retries
                cause = exc.cause if isinstance(exc, _TransportFailed) else exc
                delay = self._attempt_failed(cause, "broker")
                self.transport.close()
                self._wait(delay, keepalive=False)
        self.transport.close()
        log.info("bridge stopped: %d messages (%d new, %d redelivered), %d backed out, %d reconnections",
                 self.stats.messages, self.stats.new, self.stats.duplicates, self.stats.backed_out,
                 self.stats.reconnects)
        return self.stats

    def _connect(self) -> None:
        self.stats.connects += 1
        self.stats.reconnects = self.stats.connects - 1
        log.info("bridge connecting to the OMS broker through %r (connection %d)", self.transport, self.stats.connects)
        self._mq(self.transport.connect)
        # The backout queue first: the OMS queues name it as their dead-letter target.
        self._mq(self.transport.declare, [self.backout_queue, *self.queues])
        log.info("bridge consuming %s through %r", ", ".join(self.queues), self.transport)

    def _consume(self) -> None:
        last_report = time.monotonic()
        standing_by = False
        receiving = False
        while not self.stop.is_set():
            try:
                batch = self._mq(self.transport.fetch, self.queues, max_messages=self.batch_size, wait_s=1.0)
            except _TransportFailed as exc:
                if not isinstance(exc.cause, ConsumerStandby):
                    raise
                if not standing_by:
                    log.info("bridge standing by: %s; trying again every %.0fs", exc.cause, self.standby_poll_s)
                    standing_by = True
                self._wait(self.standby_poll_s * random.uniform(0.75, 1.0), keepalive=False)
                continue
            if standing_by:
                log.info("bridge no longer standing by: consuming %s", ", ".join(self.queues))
                standing_by = False
            if self._stall is not None and self._stall.where == "broker":
                self._resumed()
            if batch and not receiving:
                # On RabbitMQ a standby gets its first delivery when it becomes the active consumer.
                log.info("bridge receiving messages (connection %d)", self.stats.connects)
                receiving = True
            if batch:
                self._handle_until_done(batch)
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                log.info("bridge: %d messages so far (%d new)", self.stats.messages, self.stats.new)

    def _handle_until_done(self, batch: list[Delivery]) -> None:
        """Handle the batch, retrying (with backoff, the batch in hand) until it is handled, the
        broker connection fails (the messages go back to their queues), or the bridge stops."""
        incoming = {id(delivery): _incoming(delivery) for delivery in batch}
        pending = list(batch)
        while True:
            try:
                self._handle(pending, incoming)
            except _TransportFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - Postgres, Redis or anything else: keep the batch, retry
                delay = self._attempt_failed(exc, "services", holding=len(pending))
                self._wait(delay, keepalive=True)
                if self.stop.is_set():
                    return  # not acknowledged: back to their queues when the transport closes
                continue
            self.backoff.reset()
            self._resumed()
            return

    # -- one batch ----------------------------------------------------------------------------

    def handle(self, batch: list[Delivery]) -> None:
        """Handle one batch once, raising what fails (for tools and tests; `run` retries)."""
        try:
            self._handle(list(batch), {id(delivery): _incoming(delivery) for delivery in batch})
        except _TransportFailed as exc:
            raise exc.cause from None

    def _handle(self, pending: list[Delivery], incoming: dict[int, IncomingMessage]) -> None:
        """Store, send, note, commit: in that order, so that a crash between any two redelivers.
        Deliveries leave `pending` once settled, so that a retry handles only the rest."""
        try:
            with self.sessions.begin() as session:
                stored = store_batch(session, [incoming[id(d)] for d in pending])
        except MESSAGE_ERRORS:
            # Something in the batch cannot be stored: find which, one message at a time.
            while pending:
                self._handle_one(pending, incoming[id(pending[0])])
            return
        self._send(stored)
        with self.sessions.begin() as session:
            mark_acked(session, [message.inbox_id for message in stored])
        self._mq(self.transport.commit, pending)
        self._count(pending, stored)
        pending.clear()

    def _handle_one(self, pending: list[Delivery], message: IncomingMessage) -> None:
        delivery = pending[0]
        try:
            with self.sessions.begin() as session:
                stored = store_batch(session, [message])
        except MESSAGE_ERRORS as exc:
            self._failed(pending, exc)
            return
        with log_context(inbox_id=stored[0].inbox_id if stored else None):
            self._send(stored)
            with self.sessions.begin() as session:
                mark_acked(session, [m.inbox_id for m in stored])
            self._mq(self.transport.commit, [delivery])
        pending.pop(0)
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

    def _failed(self, pending: list[Delivery], exc: Exception) -> None:
        """The first pending delivery cannot be stored: back to its queue, or to the backout
        queue once it has been delivered max_attempts times."""
        delivery = pending[0]
        key = delivery.message_id or hashlib.sha256(delivery.body).hexdigest()
        self._failures[key] = self._failures.get(key, 0) + 1
        attempts = max(self._failures[key], (delivery.delivery_count or 0) + 1)
        cause = getattr(exc, "orig", None) or exc
        error = f"{type(cause).__name__}: {(str(cause).splitlines() or [''])[0]}"
        if attempts < self.max_attempts:
            log.warning("message on %s could not be stored (attempt %d of %d): %s",
                        delivery.queue, attempts, self.max_attempts, error)
            self._mq(self.transport.backout, [delivery])
            pending.pop(0)
            return
        reason = f"could not be stored after {attempts} attempts: {error}"
        self._mq(self.transport.move, delivery, self.backout_queue, reason=reason)
        pending.pop(0)
        self._failures.pop(key, None)
        self.stats.backed_out += 1
        log.error("message on %s moved to %s: %s", delivery.queue, self.backout_queue, reason)
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
        self._alert(event.id)

    # -- failing, waiting, resuming -----------------------------------------------------------

    def _mq(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the transport; what it raises becomes _TransportFailed (a broker failure)."""
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            raise _TransportFailed(exc) from exc

    def _attempt_failed(self, exc: BaseException, where: str, *, holding: int = 0) -> float:
        """Count a failed attempt, say so, and return how long to wait before the next."""
        now = time.monotonic()
        if self._stall is None or self._stall.where != where:
            self._stall = _Stall(started=now, where=where, error=_describe(exc))
        stall = self._stall
        stall.attempts += 1
        self.stats.failed_attempts += 1
        delay = self.backoff.next()
        what = (f"holding {holding} message(s), retrying them" if where == "services"
                else "closing the connection, reconnecting")
        log.warning("bridge: attempt failed (%s); %s in %.1fs (attempt %d, backoff step %d)",
                    _describe(exc), what, delay, stall.attempts, self.backoff.failures,
                    exc_info=stall.attempts == 1 and not isinstance(exc, self.recoverable))
        if (not stall.recorded and not isinstance(exc, DATABASE_UNREACHABLE)
                and (not isinstance(exc, self.recoverable) or now - stall.started >= STALL_EVENT_AFTER_S)):
            self._record_stall(stall, exc, holding)
        return delay

    def _record_stall(self, stall: _Stall, exc: BaseException, holding: int) -> None:
        fix = ("check the OMS broker or queue manager (the error names the call and the reason); "
               "the bridge reconnects by itself" if stall.where == "broker" else
               "check Postgres and Redis; the bridge holds the messages and retries by itself")
        try:
            with self.sessions.begin() as session:
                event = record(session, NewEvent(
                    type="system", name="system/bridge-stalled", level="error",
                    payload={"error": _describe(exc), "where": stall.where, "holding": holding,
                             "attempts": stall.attempts, "queues": self.queues, "fix": fix},
                ))
        except Exception as failure:  # noqa: BLE001 - the log has it; the event is tried again next attempt
            log.warning("bridge: could not record the stall (%s)", _describe(failure))
            return
        stall.recorded = True
        if stall.where == "services" and isinstance(exc, self.recoverable):
            # Postgres took the event, so it is Redis that is down: the alert (a Celery task) goes
            # when it is back, rather than as one more connection attempt in this backoff step.
            stall.alert_event_id = event.id
        else:
            self._alert(event.id)

    def _resumed(self) -> None:
        stall, self._stall = self._stall, None
        if stall is None:
            return
        stalled_s = time.monotonic() - stall.started
        log.info("bridge resumed after %.1fs and %d failed attempt(s) (first: %s)", stalled_s, stall.attempts, stall.error)
        if stall.alert_event_id is not None:
            self._alert(stall.alert_event_id)
        if not stall.recorded and stalled_s < STALL_EVENT_AFTER_S:
            return
        try:
            with self.sessions.begin() as session:
                record(session, NewEvent(
                    type="system", name="system/bridge-resumed",
                    # Warning when no stall event could be recorded (Postgres was down): say it now.
                    level="info" if stall.recorded else "warning",
                    payload={"stalled_s": round(stalled_s, 1), "attempts": stall.attempts,
                             "error": stall.error, "where": stall.where},
                ))
        except Exception as failure:  # noqa: BLE001 - the log has it
            log.warning("bridge: could not record that it resumed (%s)", _describe(failure))

    def _alert(self, event_id: int) -> None:
        try:
            self.send_alert(event_id)
        except Exception as failure:  # noqa: BLE001 - the event is recorded; the alert is best effort
            with log_context(event_id=event_id):
                    log.error("bridge: could not send the alert for event %d (%s)", event_id, _describe(failure))

    def _wait(self, delay: float, *, keepalive: bool) -> None:
        """Wait `delay` seconds (less if the bridge stops), answering the broker's heartbeats."""
        deadline = time.monotonic() + delay
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.stop.wait(min(remaining, KEEPALIVE_S))
            if keepalive and not self.stop.is_set():
                self._mq(self.transport.keepalive)


def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    first_line = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first_line}"[:500]


def _incoming(delivery: Delivery) -> IncomingMessage:
    return IncomingMessage(
        queue=delivery.queue,
        body=delivery.body,
        message_id=delivery.message_id,
        redelivered=delivery.redelivered,
        headers={k: v for k, v in delivery.headers.items() if isinstance(k, str)},
        fallback_key=None if delivery.message_id else new_key(delivery.body),
    )
