"""Memory of the `make run` stack: PSS per process and per role, against the goal of 600 MiB in all.

The processes start as the Procfile says (each line's command, run directly: the sandbox, the
bridge, the Celery workers with their -c, beat, Flower) on the local services, with a database
and a Redis database of their own and the demo channels (`wheelctl demo seed`). Once every one is
up, the stack is left idle BENCH_MEMORY_SETTLE_S seconds, then each process's PSS (proportional set
size: shared pages split between the processes that share them, so the sum is what the stack
takes) is read from /proc/<pid>/smaps_rollup, pool children included.

Then, in the same run, the marketplace worker is swapped for the layout it replaced, each
measured the same way, with the throughput of a batch of syncs against the sandbox
(BENCH_MEMORY_SKUS dirty listings on each of four Tata CLiQ channels, every call delayed
BENCH_MEMORY_DELAY_S by the sandbox, as a marketplace's answer would be), and the time a batch on
one Flipkart channel takes while those four are busy (does a slow marketplace hold up another?):
- separate: one worker per marketplace queue, threads, -c 1, 1 and 2 (the Procfile until the
  three were merged);
- one worker: the Procfile's, the three queues in one worker of threads.

The process manager, `make run`'s honcho, is not in the stack's total (the processes start
directly here): it is measured apart, running as many `sleep` lines as the Procfile has lines
(its own processes and the shell it starts for each line; the sleeps left out).

And the import weight of a worker: what `import workers.app` brings in (modules, seconds, and
whether it loads the CLI, rich, the sandbox or werkzeug), next to the bridge's (`wheelctl bridge`
loads `workers.cli` and the command's module, `workers.cli.processes`).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests
from sqlalchemy import text

from tests.support import services
from tests.support.processes import BIN, ROOT, Process, wait_for
from wheel.db import make_engine, make_sessionmaker
from wheel.services.channels import add_channel
from workers import queues
from workers.bootstrap import celery_app

GOAL_MIB = 600
SETTLE_S = float(os.environ.get("BENCH_MEMORY_SETTLE_S", "20"))
SKUS = int(os.environ.get("BENCH_MEMORY_SKUS", "300"))
DELAY_S = float(os.environ.get("BENCH_MEMORY_DELAY_S", "0.05"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
DATABASE = os.environ.get("BENCH_MEMORY_DATABASE", "wheel_bench_memory")
OUT = Path("build/bench/memory.json")
MARKETPLACE_ROLES = ("marketplaces", "amazon", "flipkart", "tatacliq")
THROUGHPUT_CHANNELS = ("T1", "T2", "T3", "T4")
# A channel of another marketplace, pushed while the Tata CLiQ channels are busy.
OTHER_CHANNEL = "F1"
# What a worker should not carry: the CLI and its terminal output, the sandbox and its web server.
HEAVY = ("workers.cli", "rich", "pygments", "alembic", "sandbox", "werkzeug", "flask", "tornado", "flower")
IMPORT_PROBE = """
import sys, time
started = time.perf_counter()
import {module}
seconds = time.perf_counter() - started
heavy = {heavy!r}
print(__import__("json").dumps({{"module": "{module}", "modules": len(sys.modules), "seconds": round(seconds, 2),
      "loads": {{h: sum(1 for m in sys.modules if m == h or m.startswith(h + ".")) for h in heavy}}}}))
"""


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name.strip(): shlex.split(command) for name, command in
            (line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))}


def local_argv(argv: list[str], sandbox_config: Path, tmp: Path) -> list[str]:
    """The Procfile's command with this virtualenv's executables, the bench's sandbox config, and
    beat's schedule file in the bench's directory."""
    out = [str(BIN / argv[0]), *argv[1:]]
    out = [str(sandbox_config) if a == "var/sandbox.json" else a for a in out]
    if argv[:4] == ["celery", "-A", "workers.app", "beat"]:
        out += ["--schedule", str(tmp / "beat-schedule")]
    return out


# -- /proc --------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except FileNotFoundError:
        return []
    return found + [d for c in found for d in children(c)]


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def role_memory(process: Process) -> dict:
    pids = [process.pid, *children(process.pid)]
    kib = [pss_kib(p) for p in pids]
    return {"processes": len(pids), "pss_mib": round(sum(kib) / 1024, 1),
            "per_process_mib": [round(k / 1024, 1) for k in kib]}


def measure(running: dict[str, Process]) -> dict:
    roles = {name: role_memory(p) for name, p in running.items()}
    return {"total_mib": round(sum(r["pss_mib"] for r in roles.values()), 1),
            "processes": sum(r["processes"] for r in roles.values()), "roles": roles}


# -- the stack ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, tmp: Path):
        database_url = services.TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + DATABASE
        services.recreate_database(database_url)
        redis.Redis.from_url(REDIS_URL).flushdb()
        self.tmp = tmp
        self.sandbox_port, flower_port = services.free_port(), services.free_port()
        self.settings = services.test_settings(database_url=database_url, redis_url=REDIS_URL,
                                               sandbox_port=self.sandbox_port, secrets_dir=tmp / "secrets",
                                               health_check_interval_s=60)
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.env = {**services.settings_env(self.settings), "WHEEL_FLOWER_PORT": str(flower_port),
                    "PYTHONPATH": str(ROOT)}
        self.flower_port = flower_port
        self.engine = make_engine(database_url, pool_size=2)
        self.sessions = make_sessionmaker(self.engine)
        self.config = tmp / "sandbox.json"
        self.running: dict[str, Process] = {}

    def seed(self) -> None:
        subprocess.run([str(BIN / "wheelctl"), "--log-level", "WARNING", "demo", "seed", "--sandbox-config",
                        str(self.config)], env={**os.environ, **self.env}, cwd=self.tmp, check=True,
                       stdout=subprocess.DEVNULL)

    def start(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.env, self.tmp).start()
        self.running[name] = process
        return process

    def stop(self, name: str) -> None:
        self.running.pop(name).stop()

    def wait_up(self, names) -> None:
        for name in names:
            process = self.running[name]
            if name == "sandbox":
                wait_for(lambda: _answers(f"{self.sandbox_url}/_sandbox/health"), 30, "the sandbox")
            elif name == "flower":
                wait_for(lambda: _answers(f"http://127.0.0.1:{self.flower_port}/healthcheck"), 60, "flower")
            elif name == "bridge":
                wait_for(lambda: "bridge consuming" in process.output() or not process.alive(), 60, "the bridge")
            elif name != "beat":
                wait_for(lambda p=process: "ready." in p.output() or not p.alive(), 90, f"{name} to be ready")
            assert process.alive(), process.output()[-3000:]

    def throughput_channels(self) -> None:
        """Four Tata CLiQ channels whose every call the sandbox answers after DELAY_S."""
        for channel in THROUGHPUT_CHANNELS:
            token = f"token-{channel.lower()}"
            (self.settings.secrets_dir / f"tatacliq-{channel.lower()}").write_text(token)
            requests.put(f"{self.sandbox_url}/_sandbox/channels/{channel}", timeout=10,
                         json={"marketplace": "tatacliq", "token": token, "delay_s": DELAY_S}).raise_for_status()
            with self.sessions.begin() as session:
                add_channel(session, channel_id=channel, marketplace="tatacliq",
                            base_url=f"{self.sandbox_url}/tatacliq", credentials_ref=f"tatacliq-{channel.lower()}",
                            known_marketplaces=("amazon", "flipkart", "tatacliq"))

    def other_channel(self) -> None:
        """A Flipkart channel, its calls delayed as the Tata CLiQ channels' are."""
        token = "token-f1"
        (self.settings.secrets_dir / "flipkart-f1").write_text(json.dumps({"app_id": "f1", "app_secret": token}))
        requests.put(f"{self.sandbox_url}/_sandbox/channels/{OTHER_CHANNEL}", timeout=10,
                     json={"marketplace": "flipkart", "client_id": "f1", "token": token, "delay_s": DELAY_S}).raise_for_status()
        with self.sessions.begin() as session:
            add_channel(session, channel_id=OTHER_CHANNEL, marketplace="flipkart",
                        base_url=f"{self.sandbox_url}/flipkart", credentials_ref="flipkart-f1",
                        known_marketplaces=("amazon", "flipkart", "tatacliq"))

    def sync_batch(self, *, other: bool = False) -> dict:
        """SKUS dirty listings on each throughput channel, one sync task each; seconds until all pushed.
        With `other`, a tenth as many on the Flipkart channel, sent once the Tata CLiQ syncs run, and
        the seconds until those are pushed."""
        with self.engine.begin() as connection:
            connection.execute(DIRTY, {"channels": list(THROUGHPUT_CHANNELS), "skus": SKUS})
        calls_before = len(requests.get(f"{self.sandbox_url}/_sandbox/calls", timeout=30).json()["calls"])
        app = celery_app(self.settings)
        started = time.monotonic()
        for channel in THROUGHPUT_CHANNELS:
            app.send_task(queues.SYNC, args=[channel], queue=queues.marketplace_queue("tatacliq"))
        other_seconds = None
        if other:
            wait_for(lambda: self.scalar(WAITING, channels=list(THROUGHPUT_CHANNELS)) < SKUS * len(THROUGHPUT_CHANNELS),
                     120, "the Tata CLiQ pushes to start", interval=0.1)
            with self.engine.begin() as connection:
                connection.execute(DIRTY, {"channels": [OTHER_CHANNEL], "skus": max(1, SKUS // 10)})
            other_started = time.monotonic()
            app.send_task(queues.SYNC, args=[OTHER_CHANNEL], queue=queues.marketplace_queue("flipkart"))
            wait_for(lambda: self.scalar(WAITING, channels=[OTHER_CHANNEL]) == 0, 600, "the Flipkart listings pushed",
                     interval=0.1)
            other_seconds = round(time.monotonic() - other_started, 2)
        wait_for(lambda: self.scalar(WAITING, channels=list(THROUGHPUT_CHANNELS)) == 0, 600, "every listing pushed",
                 interval=0.2)
        seconds = time.monotonic() - started
        calls = len(requests.get(f"{self.sandbox_url}/_sandbox/calls", timeout=30).json()["calls"]) - calls_before
        failed = self.scalar("SELECT count(*) FROM listings WHERE channel_id = ANY(:channels) AND last_error IS NOT NULL",
                             channels=list(THROUGHPUT_CHANNELS))
        listings = SKUS * len(THROUGHPUT_CHANNELS)
        return {"listings": listings, "seconds": round(seconds, 2), "listings_per_s": round(listings / seconds, 1),
                "calls": calls, "failed": failed, "other_channel_seconds": other_seconds}

    def scalar(self, sql, **params):
        with self.engine.connect() as connection:
            return connection.execute(text(sql) if isinstance(sql, str) else sql, params).scalar()

    def close(self) -> None:
        for name in list(self.running)[::-1]:
            self.stop(name)
        self.engine.dispose()
        services.delete_queues(services.TEST_AMQP_URL, [*self.settings.oms_queues.values(), self.settings.queue_backout])
        redis.Redis.from_url(REDIS_URL).flushdb()


# Every listing of the channels wants its quantity and price pushed (new versions, as after an OMS
# message), due now.
DIRTY = text("""
INSERT INTO listings (channel_id, sku, ean, ranged, ranged_version, ranged_settled, quantity, quantity_version,
                      mrp, selling_price, price_version, pushed_ranged, dirty, dirty_since, next_attempt_at)
SELECT c, 'SKU-' || n, 'EAN-' || n, true, 1, 1, n % 50, 2, 5000, 4000 + n % 900, 2, true, true,
       now() - interval '1 minute', now() - interval '1 minute'
  FROM unnest(CAST(:channels AS text[])) c, generate_series(1, :skus) n
ON CONFLICT (channel_id, sku) DO UPDATE SET quantity_version = listings.quantity_version + 1,
       price_version = listings.price_version + 1, quantity = excluded.quantity, dirty = true,
       dirty_since = excluded.dirty_since, next_attempt_at = excluded.next_attempt_at, last_error = NULL
""")
WAITING = text("SELECT count(*) FROM listings WHERE channel_id = ANY(:channels) AND dirty")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False


def settle(bench: Bench) -> dict:
    time.sleep(SETTLE_S)
    return measure(bench.running)


def imports(module: str) -> dict:
    probe = IMPORT_PROBE.format(module=module, heavy=HEAVY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# The marketplace workers as they were before the three queues shared one worker.
SEPARATE = {"amazon": 1, "flipkart": 1, "tatacliq": 2}


def variant_workers(commands: dict[str, list[str]], variant: str) -> dict[str, list[str]]:
    """The marketplace workers of a variant."""
    if variant == "one worker":
        return {"marketplaces": commands["marketplaces"]}
    return {name: ["celery", "-A", "workers.app", "worker", "-Q", queues.marketplace_queue(name), "-n", f"{name}@%h",
                   "-c", str(concurrency), "--pool", "threads", "--loglevel", "INFO"]
            for name, concurrency in SEPARATE.items()}


# -- the process manager ------------------------------------------------------------------------


def manager_memory(lines: int, tmp: Path) -> dict:
    """honcho (`make run`'s) running `lines` sleeps: PSS of its own processes and the shells it starts."""
    procfile_path = tmp / "Procfile.sleep"
    procfile_path.write_text("".join(f"p{n}: sleep 600\n" for n in range(lines)))
    process = Process("honcho", [str(BIN / "honcho"), "-f", str(procfile_path), "start"], {}, tmp).start()
    try:
        wait_for(lambda: sum(1 for p in children(process.pid) if _command(p) == "sleep") == lines, 60,
                 "honcho's processes")
        time.sleep(2)
        pids = [process.pid, *children(process.pid)]
        kinds: dict[str, list[int]] = {}
        for pid in pids:
            kinds.setdefault(_command(pid), []).append(pss_kib(pid))
    finally:
        process.stop()
    own = {name: {"processes": len(kib), "pss_mib": round(sum(kib) / 1024, 1)} for name, kib in kinds.items()
           if name != "sleep"}
    return {"lines": lines, "total_mib": round(sum(k["pss_mib"] for k in own.values()), 1), "processes": own}


def _command(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return "?"
    name = Path(argv[0].decode()).name
    return "honcho" if any(b"honcho" in a for a in argv[:2]) else name


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="wheel-bench-memory-"))
    bench = Bench(tmp)
    commands = procfile()
    result: dict = {"goal_mib": GOAL_MIB, "procfile": {n: " ".join(a) for n, a in commands.items()}}
    print(f"memory benchmark: the Procfile's {len(commands)} processes, idle {SETTLE_S:g}s before each reading")
    try:
        bench.seed()
        for name, argv in commands.items():
            bench.start(name, local_argv(argv, bench.config, tmp))
        bench.wait_up(list(commands))
        result["stack"] = settle(bench)
        bench.throughput_channels()
        bench.other_channel()
        result["variants"] = {}
        for variant in ("separate", "one worker"):
            for name in [n for n in bench.running if n in MARKETPLACE_ROLES]:
                bench.stop(name)
            for name, argv in variant_workers(commands, variant).items():
                bench.start(name, local_argv(argv, bench.config, tmp))
                bench.wait_up([name])
            bench.sync_batch()  # warm-up: each process builds its database pool, adapters, tokens
            throughput = bench.sync_batch(other=True)
            memory = settle(bench)
            workers = {n: r for n, r in memory["roles"].items() if n in MARKETPLACE_ROLES}
            result["variants"][variant] = {
                "marketplace_workers_mib": round(sum(r["pss_mib"] for r in workers.values()), 1),
                "marketplace_processes": sum(r["processes"] for r in workers.values()),
                "stack_processes": memory["processes"],
                "stack_total_mib": memory["total_mib"], "workers": workers, "sync_batch": throughput}
    finally:
        bench.close()
    result["manager"] = manager_memory(len(commands), tmp)
    result["imports"] = {"worker": imports("workers.app"), "bridge (wheelctl bridge)": imports("workers.cli.processes")}
    report(result)


def report(result: dict) -> None:
    stack = result["stack"]
    print(f"  {'role':<12} {'procs':>5} {'PSS MiB':>8}")
    for name, role in stack["roles"].items():
        print(f"  {name:<12} {role['processes']:>5} {role['pss_mib']:>8.1f}")
    print(f"  {'total':<12} {stack['processes']:>5} {stack['total_mib']:>8.1f}   goal <= {GOAL_MIB} MiB: "
          f"{'met' if stack['total_mib'] <= GOAL_MIB else 'missed'}")
    base = result["variants"]["separate"]
    print(f"  {'marketplace workers':<22} {'procs':>5} {'PSS MiB':>8} {'vs separate':>11} "
          f"{'stack MiB':>9} {'sync listings/s':>15} {'vs separate':>11} {'Flipkart s':>10} {'vs separate':>11}")
    for name, v in result["variants"].items():
        rate, other = v["sync_batch"]["listings_per_s"], v["sync_batch"]["other_channel_seconds"]
        print(f"  {name:<22} {v['marketplace_processes']:>5} {v['marketplace_workers_mib']:>8.1f} "
              f"{v['marketplace_workers_mib'] / base['marketplace_workers_mib']:>11.2f} "
              f"{v['stack_total_mib']:>9.1f} {rate:>15.1f} {rate / base['sync_batch']['listings_per_s']:>11.2f} "
              f"{other:>10.2f} {other / base['sync_batch']['other_channel_seconds']:>11.2f}")
    print(f"  (after a warm-up sync batch; separate: {SEPARATE} threads; Flipkart s: a batch on one Flipkart "
          f"channel pushed while the four Tata CLiQ channels are busy)")
    manager = result["manager"]
    parts = ", ".join(f"{name} {m['processes']} x = {m['pss_mib']:.1f}" for name, m in manager["processes"].items())
    print(f"  process manager (honcho, {manager['lines']} lines, not in the total): {manager['total_mib']:.1f} MiB "
          f"({parts})")
    for name, probe in result["imports"].items():
        loads = ", ".join(f"{k} ({n})" for k, n in probe["loads"].items() if n) or "none of them"
        print(f"  imports, {name}: {probe['modules']} modules in {probe['seconds']}s; of {', '.join(HEAVY)}: {loads}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {OUT}")


if __name__ == "__main__":
    main()
