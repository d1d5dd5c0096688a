"""Private Postgres, Redis and RabbitMQ servers for outage tests, each on its own port and data
directory, so that a test can stop and start them without touching the shared services others use."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import kombu

from tests.support.processes import Process, wait_for
from tests.support.services import free_port


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("no Postgres server binaries under /usr/lib/postgresql/*/bin (install postgresql)")
    return found[-1].parent


class PrivatePostgres:
    """A Postgres cluster made with initdb in a temporary directory. Postgres refuses to run as
    root, so as root its commands run as the `postgres` user (runuser), in a directory it owns."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        # Not under pytest's tmp_path: the postgres user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="wheel-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        result = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}{self.log()}")

    def init(self) -> PrivatePostgres:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")
        return self

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=100")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when Postgres goes away."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class PrivateRedis:
    """redis-server on a port of its own, without persistence: a restart loses what it held."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.process = Process("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"], {}, log_dir)

    def start(self) -> None:
        ready = self.process.output().count("Ready to accept connections")
        self.process.start()
        wait_for(lambda: self.process.output().count("Ready to accept connections") > ready, 10, "the private Redis")

    def stop(self) -> None:
        self.process.stop()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


_rabbit_nodes = itertools.count(1)


class PrivateRabbitMQ:
    """A RabbitMQ node of its own: its own node name, AMQP and distribution ports, and Mnesia, log
    and config in a temporary directory; no plugins (so no management listener). Its Erlang cookie
    is in the temporary HOME (`self.env`): `rabbitmqctl -n NODE` with that environment reaches
    this node and no other. It runs as whoever runs the tests (root here): the Debian wrapper in /usr/sbin would switch to the `rabbitmq` user, so the
    scripts in /usr/lib/rabbitmq/bin are called directly. Settings are the documented environment
    variables (https://www.rabbitmq.com/docs/configure#supported-environment-variables)."""

    BIN = Path("/usr/lib/rabbitmq/bin")

    def __init__(self, log_dir: Path) -> None:
        if not (self.BIN / "rabbitmq-server").exists():
            raise RuntimeError(f"no RabbitMQ server scripts in {self.BIN} (install rabbitmq-server)")
        self.root = Path(tempfile.mkdtemp(prefix="wheel-rabbit-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"wheel-chaos-{os.getpid()}-{next(_rabbit_nodes)}@localhost"
        config = self.root / "rabbitmq.conf"
        # The disk alarm would block publishers on a nearly full shared disk: a low floor instead.
        config.write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\ndisk_free_limit.absolute = 50MB\n"
                          "log.console = true\nlog.console.level = info\nlog.file = false\n")
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq-env.conf").write_text("")  # not the machine's /etc/rabbitmq/rabbitmq-env.conf
        (self.root / "home").mkdir()
        self.env = {
            "HOME": str(self.root / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(self.root / "plugins-expand"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self.process = Process(f"rabbitmq-{self.port}", [str(self.BIN / "rabbitmq-server")], self.env, log_dir)

    def start(self, timeout: float = 90) -> None:
        self.process.start()
        # Up once an AMQP login succeeds (the listener opens last, once the node has booted);
        # `rabbitmqctl await_startup` would say the same, but each call starts an Erlang VM.
        deadline = time.monotonic() + timeout
        while True:
            if not self.process.alive():
                raise RuntimeError(f"RabbitMQ {self.node} exited: {self.process.output()[-3000:]}")
            try:
                with kombu.Connection(self.url(), connect_timeout=2) as connection:
                    connection.connect()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet: refused, reset, or not yet accepting logins
                if time.monotonic() > deadline:
                    raise RuntimeError(f"RabbitMQ {self.node} did not start: {exc}; {self.process.output()[-3000:]}") from exc
            time.sleep(0.3)

    def stop(self) -> None:
        """A clean stop: SIGTERM, which the Erlang VM takes as `init:stop()` (since OTP 19.3), as a
        service manager would stop it; SIGKILL if it is not down within a minute."""
        self.process.stop(timeout=60)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"
