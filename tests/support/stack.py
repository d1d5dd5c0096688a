"""A whole Wheel stack of real processes, for end-to-end tests: sandbox, bridge, workers, beat."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select, text

from bridge.transports import Transport, transport_for_settings
from bridge.transports.amqp import AmqpTransport
from tests.support.processes import Process, celery_beat, celery_worker, wait_for, wheelctl
from tests.support.services import free_port, settings_env
from wheel.db import make_engine, make_sessionmaker
from wheel.db.models import Event
from wheel.marketplaces import MARKETPLACES
from wheel.services.channels import add_channel
from wheel.settings import Settings


class Stack:
    def __init__(self, settings: Settings, tmp: Path, sandbox_channels: dict[str, dict[str, Any]]):
        self.sandbox_port = free_port()
        self.settings = settings.model_copy(update={"sandbox_port": self.sandbox_port, "secrets_dir": tmp / "secrets"})
        self.tmp = tmp
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.env = settings_env(self.settings)
        config = tmp / "sandbox.json"
        config.write_text(json.dumps({"channels": sandbox_channels}))
        self.settings.secrets_dir.mkdir(exist_ok=True)
        self.sandbox = Process("sandbox", wheelctl("sandbox", "--config", str(config)), self.env, tmp)
        self.bridge = Process("bridge", wheelctl("bridge"), self.env, tmp)
        self.workers: list[Process] = []
        self.beat: Process | None = None
        self.engine = make_engine(self.settings.database_url, pool_size=2)
        self.sessions = make_sessionmaker(self.engine)
        self._transport: Transport | None = None

    # -- set-up ---------------------------------------------------------------------------------

    def add_channel(self, channel_id: str, token: str, marketplace: str = "tatacliq", **kwargs) -> None:
        """A channel in Wheel; `token` is the secret (a JSON text for Amazon and Flipkart)."""
        ref = f"{marketplace}-{channel_id.lower()}"
        (self.settings.secrets_dir / ref).write_text(token)
        if marketplace == "amazon":
            kwargs.setdefault("options", {"seller_id": channel_id, "lwa_url": f"{self.sandbox_url}/amazon/auth/o2/token"})
        with self.sessions.begin() as session:
            add_channel(session, channel_id=channel_id, marketplace=marketplace,
                        base_url=f"{self.sandbox_url}/{marketplace}", credentials_ref=ref,
                        known_marketplaces=MARKETPLACES, **kwargs)

    def start_sandbox(self) -> None:
        self.sandbox.start()
        wait_for(lambda: self._sandbox_up(), 15, "the sandbox to answer")

    def _sandbox_up(self) -> bool:
        try:
            return requests.get(f"{self.sandbox_url}/_sandbox/health", timeout=1).ok
        except requests.RequestException:
            return False

    def start_bridge(self) -> Process:
        self.bridge.start()
        wait_for(lambda: "bridge consuming" in self.bridge.output().split("=== start")[-1] or not self.bridge.alive(),
                 30, "the bridge to consume")
        assert self.bridge.alive(), self.bridge.output()[-3000:]
        return self.bridge

    def add_worker(self, queues: str = "oms,notifications,marketplace.tatacliq", concurrency: int = 2,
                   pool: str | None = None) -> Process:
        worker = Process(f"worker{len(self.workers)}",
                         celery_worker(f"w{len(self.workers)}-{uuid.uuid4().hex[:6]}", queues, concurrency, pool),
                         self.env, self.tmp)
        self.workers.append(worker)
        return self.start_worker(worker)

    def start_worker(self, worker: Process) -> Process:
        worker.start()
        wait_for(lambda: "ready." in worker.output().split("=== start")[-1] or not worker.alive(), 60, f"{worker.name} to be ready")
        assert worker.alive(), worker.output()[-3000:]
        return worker

    def start_beat(self) -> Process:
        self.beat = Process("beat", celery_beat(self.tmp / "beat-schedule"), self.env, self.tmp)
        return self.beat.start()

    def stop(self) -> None:
        for process in [self.bridge, *self.workers, *( [self.beat] if self.beat else []), self.sandbox]:
            process.stop()
        if self._transport is not None:
            self._transport.close()
        self.engine.dispose()

    def logs(self) -> str:
        parts = []
        for process in [self.bridge, *self.workers, *( [self.beat] if self.beat else []), self.sandbox]:
            parts.append(f"----- {process.name} -----\n{process.output()[-4000:]}")
        return "\n".join(parts)

    # -- acting as the OMS ----------------------------------------------------------------------

    def reconnect(self) -> None:
        """Drop the OMS connection `put` uses: the next put opens a new one (after a long quiet
        spell the broker may have closed it)."""
        if self._transport is not None:
            try:
                self._transport.close()
            except Exception:  # noqa: BLE001 - it may be broken already; a new one is opened
                pass
            self._transport = None

    def put(self, operation: str, body: bytes, message_id: str | None = None, headers=None) -> str:
        if self._transport is None:
            # Declares the OMS queues as the bridge does, should this put come first.
            self._transport = transport_for_settings(self.settings)
            self._transport.connect()
        message_id = uuid.uuid4().hex if message_id is None else message_id
        self._transport.put(self.settings.queue_for(operation), body, message_id=message_id, headers=headers)
        return message_id

    # -- reading the results --------------------------------------------------------------------

    def events(self, name: str | None = None, **filters) -> list[Event]:
        with self.sessions() as session:
            query = select(Event).order_by(Event.id)
            if name:
                query = query.where(Event.name == name)
            for key, value in filters.items():
                query = query.where(getattr(Event, key) == value)
            return list(session.execute(query).scalars())

    def scalar(self, sql: str, **params):
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def calls(self, channel: str | None = None) -> list[dict]:
        params = {"channel": channel} if channel else {}
        return requests.get(f"{self.sandbox_url}/_sandbox/calls", params=params, timeout=10).json()["calls"]

    def state(self, channel: str) -> dict:
        return requests.get(f"{self.sandbox_url}/_sandbox/state/{channel}", timeout=10).json()["listings"]

    def sandbox_stats(self) -> dict:
        return requests.get(f"{self.sandbox_url}/_sandbox/stats", timeout=10).json()

    # -- orders -----------------------------------------------------------------------------------

    def create_orders(self, channel: str, count: int = 0, **spec) -> list[dict]:
        response = requests.post(f"{self.sandbox_url}/_sandbox/orders", json={"channel": channel, "count": count, **spec},
                                 timeout=60)
        response.raise_for_status()
        return response.json()["created"]

    def cancel_orders(self, channel: str, count: int = 0, **spec) -> list[dict]:
        response = requests.post(f"{self.sandbox_url}/_sandbox/cancellations",
                                 json={"channel": channel, "count": count, **spec}, timeout=60)
        response.raise_for_status()
        return response.json()["cancelled"]

    def sandbox_orders(self, channel: str | None = None) -> list[dict]:
        params = {"channel": channel} if channel else {}
        return requests.get(f"{self.sandbox_url}/_sandbox/orders", params=params, timeout=60).json()["orders"]

    def drain(self, queue: str, wait_s: float = 1.0) -> list:
        """Take every message off an OMS queue, as the OMS would (Deliveries, in queue order)."""
        transport = AmqpTransport(self.settings.oms_url.get_secret_value())
        transport.connect()
        try:
            taken = []
            while (delivery := transport.get_one(queue, wait_s=wait_s)) is not None:
                taken.append(delivery)
            return taken
        finally:
            transport.close()

    def configure_sandbox(self, channel: str, **behaviour) -> None:
        requests.put(f"{self.sandbox_url}/_sandbox/channels/{channel}", json=behaviour, timeout=5).raise_for_status()
