"""OMS transports, registered by URL scheme."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bridge.transports.base import ConsumerStandby, Delivery, Transport

if TYPE_CHECKING:
    from wheel.settings import Settings


def _amqp(url: str, *, prefetch: int = 200, oms_queues: Sequence[str] = (), backout_queue: str | None = None,
          consumer: bool = False, accept_existing_queues: bool = False) -> Transport:
    # Each transport is imported when its scheme is used: IBM MQ's needs IBM's native client library.
    from bridge.transports.amqp import AmqpTransport, consumed_queue_arguments  # noqa: PLC0415

    arguments = {name: consumed_queue_arguments(backout_queue) for name in oms_queues} if backout_queue else {}
    return AmqpTransport(url, prefetch=prefetch, queue_arguments=arguments,
                         strict_queues=consumer and not accept_existing_queues)


def _ibmmq(url: str, *, prefetch: int | None = None, oms_queues: Sequence[str] = (), backout_queue: str | None = None,
           consumer: bool = False, accept_existing_queues: bool = False) -> Transport:
    from bridge.transports.ibmmq import IbmMqTransport  # noqa: PLC0415 - see _amqp

    # The queue manager's administrator defines the queues (and their backout queue, BOQNAME);
    # a consumer opens them for exclusive input, so that a second bridge stands by.
    return IbmMqTransport(url, exclusive_input=consumer)


TRANSPORTS: dict[str, Callable[..., Transport]] = {
    "amqp": _amqp,
    "amqps": _amqp,
    "ibmmq": _ibmmq,
}


def transport_from_url(url: str, **options) -> Transport:
    scheme = urlsplit(url).scheme
    try:
        factory = TRANSPORTS[scheme]
    except KeyError:
        raise ValueError(
            f"no OMS transport for URL scheme {scheme!r}; known schemes: {', '.join(sorted(TRANSPORTS))}"
        ) from None
    return factory(url, **options)


def transport_for_settings(settings: Settings, *, consumer: bool = False, accept_existing_queues: bool = False,
                           **options) -> Transport:
    """The OMS transport for these settings, knowing which queues are the OMS queues the bridge
    consumes, so that whoever declares one (the bridge, `wheelctl oms put`, a test acting as the
    OMS) declares it with the same arguments. `consumer`: the bridge's own transport (one
    consumer at a time; an OMS queue with other arguments is an error unless
    `accept_existing_queues`)."""
    return transport_from_url(
        settings.oms_url.get_secret_value(),
        oms_queues=list(settings.oms_queues.values()),
        backout_queue=settings.queue_backout,
        consumer=consumer,
        accept_existing_queues=accept_existing_queues,
        **options,
    )


__all__ = ["ConsumerStandby", "Delivery", "Transport", "TRANSPORTS", "transport_for_settings", "transport_from_url"]
