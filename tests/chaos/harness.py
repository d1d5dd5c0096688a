"""The chaos run: Wheel's whole stack on private Postgres, Redis and RabbitMQ (tests/support/private.py,
so that it can stop them without touching the machine's shared ones), under load while processes
are killed and services fail, then audited (tests/chaos/audit.py) and reported.

Sizes and duration come from the environment (`Config.from_env`): the full run (`make chaos`) is
5 minutes of load; the e2e test (tests/e2e/test_chaos.py) runs the same harness for one minute.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text

from tests.chaos import audit
from tests.chaos.faults import FaultLog, Killer, Outages, Supervisor
from tests.chaos.load import SCALE, MessageMaker, OmsMessage, channels, plan_orders, sandbox_channels, wheel_secret
from tests.chaos.oms import Oms
from tests.support import services
from tests.support.private import PrivatePostgres, PrivateRabbitMQ, PrivateRedis
from tests.support.processes import Process, celery_worker, wait_for
from tests.support.stack import Stack
from wheel.db import migrate
from wheel.db.models import Channel
from wheel.services.schedules import ensure_schedules
from wheel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EVERY_3S = "* * * * * */3"


def _env(name: str, default: float) -> float:
    return float(os.environ.get(f"WHEEL_CHAOS_{name}", default))


@dataclass
class Config:
    seconds: float = 300
    messages: int = 10_000
    skus: int = 500
    orders: int = 2_000
    cancellations: int = 200
    broker_outage_s: float = 30
    kill_every_s: tuple[float, float] = (2.0, 6.0)
    chaos_rate: float = 0.10
    slow_rate: float = 0.03
    drain_timeout_s: float = 1800
    out: Path = field(default_factory=lambda: ROOT / "build" / "chaos")

    @classmethod
    def from_env(cls) -> Config:
        return cls(seconds=_env("SECONDS", 300), messages=int(_env("MESSAGES", 10_000)), skus=int(_env("SKUS", 500)),
                   orders=int(_env("ORDERS", 2_000)), cancellations=int(_env("CANCELLATIONS", 200)),
                   broker_outage_s=_env("BROKER_OUTAGE_S", 30), drain_timeout_s=_env("DRAIN_TIMEOUT_S", 1800),
                   out=Path(os.environ.get("WHEEL_CHAOS_OUT", ROOT / "build" / "chaos")))


class ChaosRun:
    def __init__(self, config: Config):
        self.config = config
        self.tmp = Path(tempfile.mkdtemp(prefix="wheel-chaos-"))
        self.log = FaultLog()
        self.rng = random.Random(11)
        self.messages: list[OmsMessage] = []
        self.created: dict[tuple[str, str], dict] = {}
        self.cancelled: dict[tuple[str, str], dict] = {}
        self.stop_load = threading.Event()
        self.errors: list[str] = []

    # -- set-up -----------------------------------------------------------------------------------

    def start_services(self) -> None:
        self.postgres = PrivatePostgres().init()
        self.postgres.start()
        database_url = self.postgres.url("wheel")
        migrate.ensure_database(database_url)
        migrate.upgrade(database_url)
        self.redis = PrivateRedis(self.tmp)
        self.redis.start()
        self.rabbit = PrivateRabbitMQ(self.tmp)
        self.rabbit.start()
        defaults = Settings()
        settings = services.test_settings(
            database_url=database_url, redis_url=self.redis.url(), oms_url=self.rabbit.url(),
            **{f"queue_{q}": getattr(defaults, f"queue_{q}") for q in
               ("ranging", "deranging", "inventory", "pricing", "backout", "orders", "cancellations")},
            # A push lease shorter than the slow answers (Wheel renews it while a call runs), calls
            # well inside the read timeout; the sweeper and the run deadlines short, as in the e2e tests.
            push_lease_s=2, http_read_timeout_s=5, visibility_timeout_s=30, sweeper_deadline_s=5,
            sweeper_interval_s=2, job_run_deadline_s=15, orders_initial_lookback_s=3600, publish_batch_size=100,
            bridge_reconnect_max_s=5, feed_first_poll_s=2, feed_max_poll_s=5,
            # Alerts of one kind and channel held 5 s, not a minute, so that the drain is not a wait
            # for burst windows to close; the rows of a worker killed during its post taken again
            # after 15 s, not a minute (the Slack stand-in answers at once).
            alert_burst_window_s=5, alert_claim_timeout_s=15,
        )
        self.stack = Stack(settings, self.tmp, sandbox_channels())
        self.oms = Oms(self.stack.settings)

    def start_stack(self) -> None:
        stack = self.stack
        stack.start_sandbox()
        for ch, marketplace in channels().items():
            options: dict[str, Any] = {"oms_header": {"EntryType": ch}}
            if marketplace == "amazon":
                # bulk_threshold 200 (the default before the choice by estimated finish time): the
                # chaos run's bursts go out as feeds as they did, so feeds meet the faults too.
                options.update(seller_id=ch, lwa_url=f"{stack.sandbox_url}/amazon/auth/o2/token", order_lag_s=1,
                               bulk_threshold=200)
            # Enough retries that a push outlives the sandbox's 10% refusals (0.1^9 to give up).
            stack.add_channel(ch, wheel_secret(ch, marketplace), marketplace=marketplace, options=options,
                              quota_scale=SCALE, retry_delays_s=[0.2, 0.5, 1, 1, 2, 2, 3, 3])
            with stack.sessions.begin() as session:
                jobs = {"orders": EVERY_3S} if marketplace == "amazon" else {"orders": EVERY_3S, "cancellations": EVERY_3S}
                ensure_schedules(session, session.get(Channel, ch), jobs=jobs)
        pools = [("oms", "oms,notifications", 3), ("publisher", "publisher", 1),
                 ("tatacliq-1", "marketplace.tatacliq", 2), ("tatacliq-2", "marketplace.tatacliq", 2),
                 ("flipkart", "marketplace.flipkart", 2), ("amazon", "marketplace.amazon", 2)]
        for name, queues, concurrency in pools:
            worker = Process(f"worker-{name}", celery_worker(f"chaos-{name}", queues, concurrency), stack.env, self.tmp)
            stack.workers.append(worker)
            stack.start_worker(worker)
        stack.start_beat()
        stack.start_bridge()

    def restart(self, process: Process) -> None:
        process.start()  # not waiting for it to be ready: the next fault may come first

    # -- load ---------------------------------------------------------------------------------------

    def send_messages(self, messages: list[OmsMessage], seconds: float) -> None:
        started = time.monotonic()
        for n, message in enumerate(messages):
            delay = started + n * seconds / max(1, len(messages)) - time.monotonic()
            if delay > 0 and self.stop_load.wait(delay):
                return
            self.oms.put(message, self.stop_load)

    def order_waves(self, seconds: float) -> None:
        waves = max(1, int(seconds * 0.8 / 3))
        plan = plan_orders(self.config.orders, waves)
        cancels_left = self.config.cancellations
        started = time.monotonic()
        skus = [f"SKU-{n:04d}" for n in range(self.config.skus)]
        for wave, counts in enumerate(plan):
            if self.stop_load.wait(max(0.0, started + wave * 3 - time.monotonic())):
                return
            for ch, count in counts.items():
                if count:
                    self._create(ch, count, skus, wave)
            if wave >= waves * 0.35 and cancels_left > 0:
                share = -(-cancels_left // max(1, waves - wave))
                cancels_left -= self._cancel(share)
        deadline = started + seconds * 0.92
        while cancels_left > 0 and time.monotonic() < deadline and not self.stop_load.wait(3):
            cancels_left -= self._cancel(cancels_left)
        if cancels_left:
            self.errors.append(f"{cancels_left} cancellations could not be made (too few orders reached Wheel in time)")

    def _create(self, ch: str, count: int, skus: list[str], wave: int) -> None:
        response = requests.post(f"{self.stack.sandbox_url}/_sandbox/orders", timeout=60, json={
            "channel": ch, "count": count, "skus": skus, "lines_per_order": self.rng.choice((1, 2, 3)), "seed": wave})
        response.raise_for_status()
        for order in response.json()["created"]:
            self.created[(ch, order["order_id"])] = order

    def _cancel(self, wanted: int) -> int:
        """Cancel orders Wheel has sent to the OMS (an order cancelled before its pull never reaches
        the OMS: `wheelctl demo orders --help`); some only in part."""
        try:
            with self.stack.engine.connect() as connection:
                sent = [tuple(r) for r in connection.execute(text(
                    "SELECT channel_id, order_id FROM orders WHERE sent_at IS NOT NULL"))]
        except Exception:  # noqa: BLE001 - Postgres is being restarted: the next wave tries again
            return 0
        candidates = [k for k in sent if k in self.created and k not in self.cancelled]
        chosen = self.rng.sample(candidates, min(wanted, len(candidates)))
        by_channel: dict[str, list[dict]] = {}
        for ch, order_id in chosen:
            lines = self.created[(ch, order_id)]["lines"]
            spec: dict[str, Any] = {"order_id": order_id}
            skus = None
            if len(lines) > 1 and self.rng.random() < 0.3:
                spec["line_ids"] = [line["line_id"] for line in lines[:1]]
                skus = {lines[0]["sku"]}
            by_channel.setdefault(ch, []).append(spec)
            self.cancelled[(ch, order_id)] = {"skus": skus}
        for ch, specs in by_channel.items():
            requests.post(f"{self.stack.sandbox_url}/_sandbox/cancellations", json={"channel": ch, "cancellations": specs},
                          timeout=60).raise_for_status()
        return len(chosen)

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> dict:
        config = self.config
        self.start_services()
        self.start_stack()
        maker = MessageMaker([f"SKU-{n:04d}" for n in range(config.skus)])
        warm = maker.warm_up(0)
        self.messages = warm + [maker.message(len(warm) + n) for n in range(max(0, config.messages - len(warm)))]
        # Warm-up, before any fault: every SKU in stock and on sale everywhere.
        self.send_messages(warm, 0)
        wait_for(lambda: self._scalar("SELECT count(*) FROM inbox WHERE status = 'processed'") >= len(warm)
                 and self._scalar("SELECT count(*) FROM listings WHERE dirty") == 0, 300, "the warm-up to be pushed",
                 interval=1)
        self.log = FaultLog()
        for ch in channels():
            self.stack.configure_sandbox(ch, chaos_rate=config.chaos_rate, chaos_slow_rate=config.slow_rate,
                                         chaos_slow_s=3.0)
        self.log.add("sandbox-chaos", "all channels", detail=f"{config.chaos_rate:.0%} refused (5xx or 429 without "
                     f"Retry-After), {config.slow_rate:.0%} answered 3 s late (push lease 2 s)", down_s=config.seconds)
        seconds = config.seconds
        wheel_processes = [self.stack.bridge, *self.stack.workers, self.stack.beat]
        self.killer = killer = Killer(wheel_processes, self.restart, self.log, config.kill_every_s)
        self.supervisor = Supervisor(wheel_processes, killer, self.log)
        outage = min(config.broker_outage_s, seconds * 0.3)
        outages = Outages([
            (seconds * 0.2, "restart-empty", "redis", self._restart_redis),
            (seconds * 0.35, "stop", "rabbitmq (OMS broker)", lambda: self._broker_outage(outage)),
            (seconds * 0.65, "restart-empty", "redis", self._restart_redis),
            (seconds * 0.8, "restart", "postgres", self._restart_postgres),
        ], self.log)
        sender = threading.Thread(target=self.send_messages, args=(self.messages[len(warm):], seconds * 0.95), daemon=True)
        orders = threading.Thread(target=self._guarded, args=(self.order_waves, seconds), daemon=True)
        for thread in (killer, self.supervisor, outages, sender, orders):
            thread.start()
        time.sleep(seconds)
        killer.halt.set()
        killer.join(30)
        outages.join(max(5.0, config.broker_outage_s + 60))
        if outages.error is not None:
            raise RuntimeError(f"an outage could not be undone: {outages.error}") from outages.error
        sender.join(120)
        self.stop_load.set()
        orders.join(60)
        # The marketplaces' misbehaviour is a fault like the others: it ends with them, and the
        # drain is timed from here. (Left on, a pull failing 10% of the time records an error, and
        # an alert, every few seconds for ever.)
        for ch in channels():
            self.stack.configure_sandbox(ch, chaos_rate=0.0, chaos_slow_rate=0.0)
        faults_over = time.monotonic()
        drained = self.wait_drained()
        drain_s = time.monotonic() - faults_over
        time.sleep(5)  # anything that would double an outcome, or send an alert late, has had its chance
        self.supervisor.halt.set()
        report = self.audit()
        report["drain_s"] = round(drain_s, 1) if drained else None
        return report

    def _guarded(self, work, *args) -> None:
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - the load stops short; the report says why
            self.errors.append(f"{work.__name__}: {type(exc).__name__}: {exc}")

    def _restart_redis(self) -> None:
        self.redis.stop()
        self.redis.start()

    def _broker_outage(self, seconds: float) -> None:
        started = time.monotonic()
        self.rabbit.stop()
        stopped = time.monotonic()
        time.sleep(max(0.0, seconds - (stopped - started)))
        restarted = time.monotonic()
        self.rabbit.start()
        with self.log.lock:
            [entry for entry in self.log.entries if entry["kind"] == "stop"][-1]["detail"] = (f"stopping took {stopped - started:.0f}s, down {restarted - stopped:.0f}s, "
                                              f"starting took {time.monotonic() - restarted:.0f}s")

    def _restart_postgres(self) -> None:
        self.postgres.stop()
        self.postgres.start()

    def _scalar(self, sql: str, **params):
        try:
            with self.stack.engine.connect() as connection:
                return connection.execute(text(sql), params).scalar()
        except Exception:  # noqa: BLE001 - Postgres restarting: ask again
            return None

    def pending(self) -> dict[str, Any]:
        ids = [m.message_id for m in self.messages]
        with self.stack.engine.connect() as connection:
            row = connection.execute(text(
                "SELECT (SELECT count(DISTINCT transport_message_id) FROM inbox WHERE transport_message_id = ANY(:ids)"
                "        AND status = 'processed') AS processed,"
                " (SELECT count(*) FROM listings WHERE dirty) AS dirty,"
                " (SELECT count(*) FROM submissions WHERE status = 'in_progress') AS feeds,"
                " (SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS unsent,"
                " (SELECT count(*) FROM outbox WHERE kind = 'order') AS orders,"
                " (SELECT count(DISTINCT (channel_id, order_id)) FROM outbox WHERE kind = 'cancellation') AS cancellations"),
                {"ids": ids}).one()
            alerts = (connection.execute(text("SELECT count(*) FROM alerts WHERE sent_at IS NULL")).scalar()
                      if audit.has_alerts_table(connection) else 0)
        return {"messages": len(ids) - row.processed, "dirty": row.dirty, "feeds": row.feeds, "unsent": row.unsent,
                "orders": len(self.created) - row.orders, "cancellations": len(self.cancelled) - row.cancellations,
                "alerts": alerts}

    def wait_drained(self) -> bool:
        deadline = time.monotonic() + self.config.drain_timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.pending()
            except Exception as exc:  # noqa: BLE001 - a service still coming back
                last = {"error": str(exc)[:200]}
            if last and all(v == 0 for v in last.values() if isinstance(v, int)) and "error" not in last:
                return True
            if int(time.monotonic()) % 15 < 2:
                print(f"[chaos] draining: {last}", flush=True)
            time.sleep(2)
        self.errors.append(f"not drained after {self.config.drain_timeout_s:.0f}s: {last}")
        return False

    def audit(self) -> dict:
        calls = requests.get(f"{self.stack.sandbox_url}/_sandbox/calls", timeout=120).json()["calls"]
        states = {ch: self.stack.state(ch) for ch in channels()}
        stats = self.stack.sandbox_stats()
        deliveries = {"orders": self.oms.drain(self.stack.settings.queue_orders),
                      "cancellations": self.oms.drain(self.stack.settings.queue_cancellations)}
        # Alerts go out after their event commits: each error event so far gets 30 s to be alerted.
        last_event = self._scalar("SELECT coalesce(max(id), 0) FROM events")
        deadline = time.monotonic() + 30
        while True:
            logs = "\n".join(p.output() for p in self.stack.workers)
            with self.stack.engine.connect() as connection:
                alerted = audit.errors_alerted(connection, logs, last_event)
            if alerted["violations"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
        with self.stack.engine.connect() as connection:
            rows = audit.inbox_rows(connection, self.messages)
            expected = audit.expected_state(self.messages, rows)
            invariants = {
                "messages_stored_and_processed_once": audit.messages_stored_once(connection, self.messages, rows),
                "one_outcome_per_message_item": audit.one_outcome_per_item(connection, self.messages, rows),
                "last_value_wins": audit.last_value_wins(expected, states),
                "no_older_value_pushed": audit.no_older_push(self.messages, rows, calls),
                "orders_reach_oms_once": audit.reached_oms_once("orders", deliveries["orders"], self.created),
                "cancellations_reach_oms_once": audit.reached_oms_once("cancellations", deliveries["cancellations"],
                                                                        self.cancelled),
                "error_events_alerted": alerted,
            }
            events = dict(connection.execute(text("SELECT name, count(*) FROM events GROUP BY name")).all())
        kinds: dict[str, int] = {}
        for message in self.messages:
            kinds[message.kind] = kinds.get(message.kind, 0) + 1
        return {
            "invariants": invariants,
            "load": {"seconds": self.config.seconds, "oms_messages": len(self.messages), "by_kind": kinds,
                     "items": sum(len(m.items) for m in self.messages), "skus": self.config.skus,
                     "channels": channels(), "orders": len(self.created), "cancellations": len(self.cancelled),
                     "partial_cancellations": sum(1 for c in self.cancelled.values() if c["skus"] is not None),
                     "oms_put_retries": self.oms.put_retries, "sandbox_calls": stats["calls"],
                     "sandbox_by_status": stats["by_status"], "sandbox_chaos_refused": stats.get("chaos_refused")},
            "faults": self.log.entries,
            "exits_on_their_own": self.supervisor.exits,
            "process_starts": {p.name: p.starts for p in [self.stack.bridge, *self.stack.workers, self.stack.beat]},
            "events": events,
            "errors": self.errors,
        }

    def teardown(self, keep_logs: Path | None = None) -> None:
        self.stop_load.set()
        # Nothing starts a process again from here on (an interrupted run stops mid-chaos).
        for thread in (getattr(self, "killer", None), getattr(self, "supervisor", None)):
            if thread is not None:
                thread.halt.set()
                thread.join(15)
        if hasattr(self, "oms"):
            self.oms.close()
        if hasattr(self, "stack"):
            self.stack.stop()
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for log in self.tmp.glob("*.log"):
                shutil.copy(log, keep_logs / log.name)
        for service in ("rabbit", "redis"):
            if hasattr(self, service):
                getattr(self, service).stop()
        if hasattr(self, "rabbit"):
            self.rabbit.destroy()
        if hasattr(self, "postgres"):
            self.postgres.destroy()
        shutil.rmtree(self.tmp, ignore_errors=True)
