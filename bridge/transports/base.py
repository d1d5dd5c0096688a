"""The transport interface every OMS broker implements (AMQP, IBM MQ).

A transport hands out messages under a unit of work (IBM MQ syncpoint, AMQP manual ack): a
message taken with `fetch` is removed from its queue only by `commit`, and returns to it (its
delivery count raised) on `backout` or when the connection is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Delivery:
    """One message taken from a queue, not yet committed."""

    queue: str
    body: bytes
    # The transport's id for the message; None only when an AMQP sender set none.
    message_id: str | None
    # The broker says it delivered this message before (IBM MQ: BackoutCount > 0).
    redelivered: bool
    # How many times it was delivered before this one, where the broker counts (IBM MQ's
    # BackoutCount, RabbitMQ quorum queues' x-delivery-count); None where it does not.
    delivery_count: int | None
    headers: dict[str, Any] = field(default_factory=dict)
    # Transport-private handle (AMQP delivery tag, ...).
    handle: Any = None


@dataclass(frozen=True)
class Outgoing:
    """One message to put (`Transport.put_many`)."""

    queue: str
    body: bytes
    message_id: str
    headers: dict[str, Any] | None = None


class ConsumerStandby(Exception):
    """Another consumer holds the queue exclusively (IBM MQ: opened for exclusive input), so this
    one takes nothing: it waits as a standby and tries again. Not a failure."""


class Transport(Protocol):
    # Exceptions that mean "the connection is gone: reconnect and carry on".
    connection_errors: tuple[type[BaseException], ...]

    def connect(self) -> None: ...

    def declare(self, queues: Sequence[str]) -> None:
        """Make sure the queues exist (where the transport may create them)."""

    def fetch(self, queues: Sequence[str], *, max_messages: int, wait_s: float) -> list[Delivery]:
        """Take up to max_messages from the queues, waiting up to wait_s for the first. Raises
        ConsumerStandby while another consumer holds a queue exclusively."""

    def keepalive(self) -> None:
        """Keep the connection alive while the caller holds deliveries without fetching (it waits
        for Postgres or Redis): answer heartbeats. Raises connection errors like any call."""

    def commit(self, deliveries: Sequence[Delivery]) -> None:
        """Remove the deliveries from their queues for good (and commit any puts made)."""

    def backout(self, deliveries: Sequence[Delivery]) -> None:
        """Return the deliveries to their queues, their delivery count raised."""

    def put(self, queue: str, body: bytes, *, message_id: str, headers: dict[str, Any] | None = None) -> None:
        """Put a persistent message and make it durable before returning."""

    def put_many(self, messages: Sequence[Outgoing]) -> None:
        """Put persistent messages, in order, all durable before returning (the publisher's batch:
        a transport may wait for them together rather than one by one). If it raises, any of them
        may have been put."""

    def move(self, delivery: Delivery, to_queue: str, *, reason: str) -> None:
        """Put the delivery on another queue (the backout queue) and remove it from its own,
        as one unit of work where the transport allows."""

    def get_one(self, queue: str, *, wait_s: float) -> Delivery | None:
        """Take one message and commit it at once (for tools like `wheelctl oms tail`)."""

    def depth(self, queue: str) -> int:
        """How many messages the queue holds (the health check counts the backout queue)."""

    def exists(self, queue: str) -> bool:
        """Whether the queue exists (and this connection may look at it), asked passively: it is never
        created, and nothing is taken from it or put on it (`wheelctl doctor`)."""

    def close(self) -> None: ...
