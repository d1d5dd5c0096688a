"""The composition root for worker processes: settings, database, adapters, alerts.

Built lazily in each process (after the prefork pool forks), never at import time.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from functools import cached_property

import redis
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Channel
from wheel.quota import RedisQuotaGate, effective_quotas

from wheel.db import make_engine, make_sessionmaker
from wheel.marketplaces import adapter_for
from wheel.marketplaces.base import ChannelConfig, HttpConfig, MarketplaceAdapter, QuotaGate
from wheel.notifications import Sender, sender_from_settings
from wheel.services.alerts import DeliveryOptions
from wheel.secrets import SecretStore
from wheel.settings import Settings

ADAPTER_TTL_S = 300
# The publisher reconnects to the OMS broker after this long without a put (heartbeats are 30 s).
TRANSPORT_IDLE_S = 20


class Container:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.pid = os.getpid()
        self._adapters: dict[ChannelConfig, tuple[float, MarketplaceAdapter]] = {}
        self._lock = threading.Lock()
        self._transport = None
        self._transport_used = 0.0

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(make_engine(self.settings.database_url, application_name="wheel-worker"))

    @cached_property
    def secrets(self) -> SecretStore:
        return SecretStore(os.environ, self.settings.secrets_dir)

    @cached_property
    def http(self) -> HttpConfig:
        return HttpConfig(self.settings.http_connect_timeout_s, self.settings.http_read_timeout_s)

    @cached_property
    def alert_sender(self) -> Sender:
        return sender_from_settings(self.settings, self.secrets)

    @cached_property
    def alert_options(self) -> DeliveryOptions:
        s = self.settings
        return DeliveryOptions(window_s=s.alert_burst_window_s, first_ids=s.alert_burst_ids,
                               payload_chars=s.alert_payload_chars, retry_max_s=s.alert_retry_max_s)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url, socket_timeout=10, socket_connect_timeout=10)

    def quota_gate(self, channel: Channel, adapter: MarketplaceAdapter) -> QuotaGate:
        quotas = effective_quotas(adapter.capabilities.quotas, channel.quota_scale, channel.quotas)
        return RedisQuotaGate(self.redis, channel.id, quotas)

    def order_source(self, channel: Channel):
        """The channel's adapter as an order source, and its quota gate."""
        from wheel.services.sync import channel_config

        adapter = self.adapter(channel_config(channel))
        return adapter, self.quota_gate(channel, adapter)

    @property
    def outlet(self):
        """The OMS transport the publisher puts on: one connection per process, reopened after a failure."""
        from bridge.transports import transport_from_url
        from wheel.services.outbox import Outlet

        if self._transport is not None and time.monotonic() - self._transport_used > TRANSPORT_IDLE_S:
            # Idle connections miss their heartbeats and the broker drops them: start afresh
            # rather than fail the first put after a quiet spell.
            self.drop_transport()
        if self._transport is None:
            transport = transport_from_url(self.settings.oms_url.get_secret_value())
            transport.connect()
            transport.declare([self.settings.queue_orders, self.settings.queue_cancellations])
            self._transport = transport
        transport = self._transport
        self._transport_used = time.monotonic()
        return Outlet(put=transport.put, commit=lambda: transport.commit([]))

    def drop_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            try:
                transport.close()
            except Exception:  # noqa: BLE001 - it is broken already; a new one is made next time
                pass

    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def adapter(self, channel: ChannelConfig) -> MarketplaceAdapter:
        """One adapter (and HTTP session, and token) per channel config, refreshed now and then."""
        now = time.monotonic()
        with self._lock:
            cached = self._adapters.get(channel)
            if cached is not None and now - cached[0] < ADAPTER_TTL_S:
                return cached[1]
        adapter = adapter_for(channel, self.http, self.secrets)
        with self._lock:
            self._adapters[channel] = (now, adapter)
        return adapter


_container: Container | None = None


def container(settings: Settings) -> Container:
    global _container
    if _container is None or _container.pid != os.getpid():
        _container = Container(settings)
    return _container
