"""The chaos run's faults, injected while the load runs: a random Wheel process SIGKILLed every few
seconds and started again; Redis restarted empty; the OMS broker stopped; Postgres restarted."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.processes import Process


@dataclass
class FaultLog:
    started: float = field(default_factory=time.monotonic)
    entries: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, target: str, **detail) -> dict:
        entry = {"at_s": round(time.monotonic() - self.started, 1), "kind": kind, "target": target, **detail}
        with self.lock:
            self.entries.append(entry)
        print(f"[chaos {entry['at_s']:7.1f}s] {kind} {target} {detail or ''}", flush=True)
        return entry

    def last_end(self) -> float:
        """Seconds from the start to the end of the last fault."""
        with self.lock:
            return max((e["at_s"] + e.get("down_s", 0) for e in self.entries), default=0.0)


class Killer(threading.Thread):
    """SIGKILLs a random process of `processes` every `every_s` (a range), and starts it again after
    a moment, until stopped."""

    def __init__(self, processes: list[Process], restart: Callable[[Process], None], log: FaultLog,
                 every_s: tuple[float, float], seed: int = 5):
        super().__init__(daemon=True, name="chaos-killer")
        self.processes, self.restart, self.log, self.every_s = processes, restart, log, every_s
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        # The process being killed and started again (the supervisor leaves it alone).
        self.busy = threading.Lock()
        self.victim: Process | None = None

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(*self.every_s)):
            victim = self.rng.choice(self.processes)
            with self.busy:
                if not victim.alive():
                    continue  # the supervisor is starting it again
                self.victim = victim
            started = time.monotonic()
            entry = self.log.add("sigkill", victim.name)
            victim.kill()
            self.halt.wait(self.rng.uniform(0.2, 2.0))
            with self.busy:
                self.restart(victim)
                self.victim = None
            entry["down_s"] = round(time.monotonic() - started, 1)


class Outages(threading.Thread):
    """The planned outages, each at its second from the start: (at_s, kind, target, action) where
    `action()` does the outage and returns when the service is back."""

    def __init__(self, plan: list[tuple[float, str, str, Callable[[], None]]], log: FaultLog):
        super().__init__(daemon=True, name="chaos-outages")
        self.plan, self.log = sorted(plan, key=lambda p: p[0]), log
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for at_s, kind, target, action in self.plan:
                if self.halt.wait(max(0.0, at_s - (time.monotonic() - self.log.started))):
                    return
                started = time.monotonic()
                entry = self.log.add(kind, target)
                action()
                entry["down_s"] = round(time.monotonic() - started, 1)
                print(f"[chaos] {target} back after {entry['down_s']}s", flush=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the harness, which stops the run
            self.error = exc


class Supervisor(threading.Thread):
    """Starts again a Wheel process that exited on its own, as the deployment's restart policy does
    (docker-compose.yml: `restart: unless-stopped`), and notes each exit with the last lines of its
    log: an exit nobody caused is a finding of the run."""

    def __init__(self, processes: list[Process], killer: Killer, log: FaultLog):
        super().__init__(daemon=True, name="chaos-supervisor")
        self.processes, self.killer, self.log = processes, killer, log
        self.halt = threading.Event()
        self.exits: list[dict] = []

    def run(self) -> None:
        while not self.halt.wait(1.0):
            self.check()

    def check(self) -> None:
        for process in self.processes:
            with self.killer.busy:
                if process.alive() or process is self.killer.victim:
                    continue
                tail = [line for line in process.output().splitlines()[-400:]
                        if "CRITICAL" in line or "Unrecoverable" in line or "Error" in line[:120]]
                self.exits.append({"at_s": round(time.monotonic() - self.log.started, 1), "process": process.name,
                                   "returncode": process.popen.returncode if process.popen else None,
                                   "last_error": tail[-1][:300] if tail else ""})
                print(f"[chaos] {process.name} exited on its own ({self.exits[-1]['last_error'][:150]}): started again",
                      flush=True)
                process.start()
