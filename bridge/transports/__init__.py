"""OMS transports, registered by URL scheme."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from bridge.transports.base import Delivery, Transport


def _amqp(url: str, **options) -> Transport:
    from bridge.transports.amqp import AmqpTransport

    return AmqpTransport(url, **options)


def _ibmmq(url: str, **options) -> Transport:
    from bridge.transports.ibmmq import IbmMqTransport

    options.pop("prefetch", None)
    return IbmMqTransport(url, **options)


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


__all__ = ["Delivery", "Transport", "TRANSPORTS", "transport_from_url"]
