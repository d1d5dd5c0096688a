"""Starting and killing the real processes (bridge, workers, beat, sandbox) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Process:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Process:
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n=== start {self.starts}: {' '.join(self.argv)}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv, env={**os.environ, **self.env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a Celery worker and its pool children die together)."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int | None:
        if not self.alive():
            return self.popen.returncode if self.popen else None
        self.kill(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            return None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wheelctl(*args: str) -> list[str]:
    return [str(BIN / "wheelctl"), "--log-level", "INFO", *args]


def celery_worker(name: str, queues: str, concurrency: int = 2, pool: str | None = None) -> list[str]:
    return [
        str(BIN / "celery"), "-A", "workers.app", "worker", "-Q", queues, "-n", f"{name}@%h",
        "-c", str(concurrency), "--loglevel", "INFO", "--without-mingle", "--without-gossip",
        *(["--pool", pool] if pool else []),
    ]


def celery_beat(schedule_file: Path) -> list[str]:
    return [str(BIN / "celery"), "-A", "workers.app", "beat", "--schedule", str(schedule_file), "--loglevel", "INFO"]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
