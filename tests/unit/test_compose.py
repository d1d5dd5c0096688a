"""docker-compose.yml starts on a fresh clone: every service has an image and a command, the
one-shot jobs (migrate, the demo seed) finish before what needs them, long-running services have a
health check and come back after a crash, each file the stack reads is in the repository, the
image's user can read its secrets, and nothing is published beyond 127.0.0.1.

No Docker engine runs here, so the file is read (with PyYAML) and checked against the repository,
the Dockerfile, the Procfile and Wheel's own settings; README.md ("Docker Compose") gives the
`docker compose config` and `docker compose up` steps for a machine with an engine.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath

import pytest
import yaml

from wheel.demo import DEMO_CHANNELS
from wheel.settings import Settings
from workers.flower import SECRET_REF as FLOWER_SECRET_REF
from workers.queues import ALL_QUEUES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict] = COMPOSE["services"]
EXAMPLE = (ROOT / "deploy/compose.env.example").read_text()
EXAMPLE_VARIABLES = set(re.findall(r"^([A-Z_]+)=", EXAMPLE, re.M))
ONE_SHOT = {"migrate", "seed"}
# Services that run their image's own command (its ENTRYPOINT/CMD), on purpose.
IMAGE_DEFAULT_COMMAND = {
    "postgres": "the postgres image's docker-entrypoint.sh postgres",
    "ibmmq": "IBM's runmqdevserver, which creates QM1 and runs the MQSC files in /etc/mqm",
    "metabase": "Metabase's /app/run_metabase.sh",
}
# What each pinned image must be (the issue asks for these major versions).
IMAGE_VERSIONS = {
    "postgres": r"postgres:16\.\d+(-[a-z]+)?",
    "redis": r"redis:7\.\d+\.\d+(-[a-z]+)?",
    "ibmmq": r"icr\.io/ibm-messaging/mq:9\.\d+\.\d+\.\d+-r\d+",
    "metabase": r"metabase/metabase:v\d+\.\d+\.\d+",
}


def wheel_services() -> dict[str, dict]:
    """The services built from deploy/Dockerfile (Wheel's own processes)."""
    return {name: s for name, s in SERVICES.items() if "build" in s}


def argv(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def healthcheck_argv(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    return shlex.split(test[1]) if test[0] == "CMD-SHELL" else test[1:]


def default_of(value: str) -> str:
    """`${NAME:-2}` -> "2" (what Compose uses when .env leaves NAME unset)."""
    match = re.fullmatch(r"\$\{[A-Z_]+:-(\d+)\}", value)
    return match.group(1) if match else value


# -- every service can start ---------------------------------------------------------------------


def test_every_service_has_an_image_or_a_build_and_a_command_or_its_images_stated_default():
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        if name in IMAGE_DEFAULT_COMMAND:
            assert "command" not in service and "image" in service, name
        else:
            assert argv(service), f"{name} has no command"
    for name, service in wheel_services().items():
        assert argv(service)[0] in {"wheelctl", "celery"}, name


def test_images_are_pinned_to_the_versions_asked_for_and_rabbitmq_is_gone():
    for name, service in SERVICES.items():
        if "image" in service:
            assert not service["image"].endswith(":latest") and ":" in service["image"], name
    for name, pattern in IMAGE_VERSIONS.items():
        assert re.fullmatch(pattern, SERVICES[name]["image"]), SERVICES[name]["image"]
    assert "rabbitmq" not in SERVICES and "rabbitmq" not in COMPOSE_TEXT.lower()
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.M), "pin the base image"


def test_every_service_has_its_environment():
    for name, service in SERVICES.items():
        assert service.get("environment"), f"{name} has no environment"
    for name, service in wheel_services().items():
        env = service["environment"]
        assert env["WHEEL_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?"), name
        if name != "flower":
            assert env["WHEEL_DATABASE_URL"].startswith("postgresql+psycopg://wheel:${WHEEL_DB_PASSWORD:?"), name
            assert env["WHEEL_OMS_URL"].startswith("ibmmq://app:${MQ_APP_PASSWORD:?"), name
            assert env["WHEEL_SECRETS_DIR"] == "/run/secrets/wheel", name


# -- order, health and restarts ------------------------------------------------------------------


def test_long_running_services_have_a_health_check_and_restart_one_shots_do_not():
    for name, service in SERVICES.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no" and "healthcheck" not in service, name
            continue
        assert service.get("restart") == "unless-stopped", name
        check = service.get("healthcheck")
        assert check and check["test"][0] in {"CMD", "CMD-SHELL"} and check["interval"] and check["retries"], name


def test_depends_on_waits_for_health_or_completion():
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        for target, rule in depends.items():
            assert target in SERVICES, (name, target)
            if target in ONE_SHOT:
                assert rule == {"condition": "service_completed_successfully"}, (name, target)
            else:
                assert rule == {"condition": "service_healthy"}, (name, target)
                assert "healthcheck" in SERVICES[target], (name, target)
            # A service outside a profile cannot wait for one that may not be started.
            assert set(SERVICES[target].get("profiles", [])) <= set(service.get("profiles", [])), (name, target)
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("bridge", "beat", *[n for n in SERVICES if n.startswith("worker-")]):
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert {"postgres", "redis", "ibmmq"} <= set(depends), name
    assert SERVICES["seed"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["sandbox"]["depends_on"]["seed"]["condition"] == "service_completed_successfully"


def test_worker_health_checks_ping_their_own_node():
    for name, service in SERVICES.items():
        if not name.startswith("worker-"):
            continue
        node = option(argv(service), "-n").split("@")[0]
        check = healthcheck_argv(service)
        assert check[:5] == ["celery", "-A", "workers.app", "inspect", "ping"], name
        assert option(check, "--destination") == f"{node}@$$HOSTNAME", name


# -- the workers, as in the Procfile -------------------------------------------------------------


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(rest) for name, _, rest in (line.partition(":") for line in lines if line.strip())}


def test_worker_pools_match_the_procfile_with_their_concurrency_and_cover_every_queue():
    local = {option(args, "-Q"): args for args in procfile().values() if "worker" in args}
    served = set()
    for name, service in SERVICES.items():
        args = argv(service)
        if "worker" not in args:
            continue
        queues = option(args, "-Q")
        assert queues in local, f"{name} serves {queues}, which no Procfile worker does"
        assert default_of(option(args, "-c")) == option(local[queues], "-c"), name
        served.update(queues.split(","))
    assert served == set(ALL_QUEUES)
    assert option(argv(SERVICES["worker-publisher"]), "-c") == "1", "the publisher keeps the outbox in order"
    for variable in re.findall(r"\$\{(WHEEL_[A-Z]+_CONCURRENCY):-\d+\}", COMPOSE_TEXT):
        assert f"# {variable}=" in EXAMPLE, variable


def test_flower_and_the_procfile_use_the_launcher():
    assert procfile()["flower"] == ["wheelctl", "flower"]
    assert argv(SERVICES["flower"]) == ["wheelctl", "flower"]


# -- files the stack reads -----------------------------------------------------------------------


def host_mounts() -> list[tuple[str, Path, str]]:
    out = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                out.append((name, ROOT / source, target))
    return out


def test_every_file_the_stack_reads_is_in_the_repository():
    for name, service in SERVICES.items():
        if "build" in service:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name
        for env_file in service.get("env_file", []):
            assert (ROOT / env_file).is_file() or (ROOT / f"{env_file}.example").is_file(), (name, env_file)
    mounts = host_mounts()
    assert mounts
    for name, source, _ in mounts:
        assert source.is_file(), (name, source)
    for secret in COMPOSE["secrets"].values():
        assert "file" in secret or "environment" in secret, secret
        if "file" in secret:
            assert (ROOT / secret["file"]).is_file() or (ROOT / f"{secret['file']}.example").is_file(), secret
        else:
            assert secret["environment"] in EXAMPLE_VARIABLES, secret
    assert (ROOT / ".dockerignore").is_file()
    for name in COMPOSE["volumes"]:
        assert any(v.split(":")[0] == name for s in SERVICES.values() for v in s.get("volumes", [])), name


def test_ibmmq_runs_the_mqsc_that_defines_every_queue_wheel_uses():
    mounts = {target: source for name, source, target in host_mounts() if name == "ibmmq"}
    mqsc = [source for target, source in mounts.items() if PurePosixPath(target).parent == PurePosixPath("/etc/mqm")]
    assert len(mqsc) == 1 and mqsc[0].suffix == ".mqsc"
    defined = set(re.findall(r"^DEFINE QLOCAL\('([A-Z.]+)'\)", mqsc[0].read_text(), re.M))
    settings = Settings()
    wanted = {settings.queue_for(name) for name in ("ranging", "deranging", "inventory", "pricing", "backout",
                                                    "orders", "cancellations")}
    assert wanted == defined
    targets = {s["target"] for s in SERVICES["ibmmq"]["secrets"]}
    assert targets == {"mqAppPassword", "mqAdminPassword"}  # the names IBM's image reads


def test_the_demo_seed_writes_the_config_the_sandbox_reads_and_points_channels_at_it():
    seed, sandbox = argv(SERVICES["seed"]), argv(SERVICES["sandbox"])
    assert seed[:3] == ["wheelctl", "demo", "seed"]
    config = option(seed, "--sandbox-config")
    assert option(sandbox, "--config") == config
    shared = PurePosixPath(config).parent
    volumes = {s: {v.split(":")[1]: v.split(":")[0] for v in SERVICES[s]["volumes"]} for s in ("seed", "sandbox")}
    assert volumes["seed"][str(shared)] == volumes["sandbox"][str(shared)] in COMPOSE["volumes"]
    assert option(seed, "--sandbox-url") == f"http://sandbox:{option(sandbox, '--port')}"
    assert option(sandbox, "--host") == "0.0.0.0"
    # The seed writes the channels' credentials where the others read them.
    secrets = {v.split(":")[1]: v for v in SERVICES["seed"]["volumes"]}["/run/secrets/wheel"]
    assert not secrets.endswith(":ro")
    for name in ("bridge", "worker-marketplaces"):
        assert "channel-secrets:/run/secrets/wheel:ro" in SERVICES[name]["volumes"], name
    assert {c.id for c in DEMO_CHANNELS} and SERVICES["seed"]["profiles"] == SERVICES["sandbox"]["profiles"] == ["demo"]
    assert "COMPOSE_PROFILES=demo" in EXAMPLE.splitlines(), "a fresh clone's .env starts the demo"


# -- secrets and users ---------------------------------------------------------------------------


def mode(secret: dict) -> int:
    """Compose reads YAML 1.2, where 0o400 is octal; PyYAML (YAML 1.1) hands it over as text."""
    value = secret["mode"]
    return value if isinstance(value, int) else int(value, 8 if not value.startswith("0o") else 0)


def test_the_images_user_can_read_its_secrets():
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    user = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert len(user) == 1, "the Dockerfile's user is numeric uid:gid"
    uid, gid = user[0]
    assert re.search(rf"useradd [^\n]*--uid {uid}\b", dockerfile) and re.search(rf"groupadd [^\n]*--gid {gid}\b", dockerfile)
    # The channel-secrets volume starts as a copy of this directory: the user's, nobody else's.
    assert re.search(r"install -d -o wheel -g wheel -m 0700 /run/secrets/wheel", dockerfile)
    for name, service in wheel_services().items():
        for secret in service.get("secrets", []):
            assert (secret["uid"], secret["gid"]) == (uid, gid), name
            assert mode(secret) & 0o077 == 0, f"{name}: {secret['source']} readable by others"
            assert secret["source"] in COMPOSE["secrets"], name
    flower = SERVICES["flower"]
    (secret,) = flower["secrets"]
    assert secret["target"] == FLOWER_SECRET_REF and flower["environment"]["WHEEL_SECRETS_DIR"] == "/run/secrets"
    assert "environment" in COMPOSE["secrets"][secret["source"]], "Compose applies uid/gid/mode to environment secrets only"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent directory excludes
    everything under it (https://docs.docker.com/build/concepts/context/#dockerignore-files)."""
    excluded = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        regex = "".join(".*" if p == "**" else "[^/]*" if p == "*" else "[^/]" if p == "?" else re.escape(p)
                        for p in re.split(r"(\*\*|\*|\?)", pattern) if p)
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def test_the_dockerignore_keeps_secrets_and_the_virtualenv_out_of_the_image():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (".venv/bin/python", "var/secrets/tatacliq-ua", "var/sandbox.json", ".env", ".git/config",
                 "wheel/__pycache__/settings.cpython-311.pyc", ".pytest_cache/v/cache", "build/bench/x.json",
                 "secrets/x"):
        assert dockerignored(path, patterns), path
    for path in ("pyproject.toml", "README.md", "wheel/secrets.py", "workers/cli/processes.py", "workers/flower.py",
                 "migrations/env.py", "alembic.ini", "deploy/Dockerfile"):
        assert not dockerignored(path, patterns), path
    makefile = (ROOT / "Makefile").read_text()
    assert "WHEEL_SECRETS_DIR ?= $(CURDIR)/var/secrets" in makefile  # the secrets directory checked above


# -- nothing open to the network -----------------------------------------------------------------


def test_published_ports_listen_on_localhost_only_and_postgres_and_redis_are_not_published():
    published = [port for service in SERVICES.values() for port in service.get("ports", [])]
    assert published and all(re.fullmatch(r"127\.0\.0\.1:\d+:\d+", p) for p in published), published
    assert "ports" not in SERVICES["postgres"] and "ports" not in SERVICES["redis"]


def test_every_password_comes_from_the_environment_without_a_default():
    assert "passw0rd" not in COMPOSE_TEXT
    references = re.findall(r"\$\{([A-Z_]+)(:?[-?+])?[^}]*\}", COMPOSE_TEXT)
    secret = [(name, how) for name, how in references if re.search(r"PASSWORD|AUTH|SECRET|TOKEN", name)]
    assert secret and all(how == ":?" for _, how in secret), secret
    assert {name for name, _ in secret} <= EXAMPLE_VARIABLES
    assert all(re.fullmatch(r"[A-Z_]+=(demo)?", line) for line in EXAMPLE.splitlines()
               if line and not line.startswith("#")), "the example holds no value but the profile"


def test_redis_and_flower_ask_for_a_password_and_wheel_is_not_the_superuser():
    assert "--requirepass" in argv(SERVICES["redis"])
    assert SERVICES["flower"]["environment"]["WHEEL_FLOWER_ADDRESS"] == "0.0.0.0"  # refused without a password
    assert "WHEEL_FLOWER_BASIC_AUTH" not in SERVICES["flower"]["environment"]  # a secret, not an env value
    assert "POSTGRES_USER" not in SERVICES["postgres"]["environment"]


@pytest.mark.parametrize("script", sorted((ROOT / "deploy/postgres").glob("*.sh")))
def test_postgres_init_scripts_are_mounted_executable_and_pass_passwords_as_psql_variables(script):
    assert script.stat().st_mode & 0o111, f"{script.name} must be executable for the postgres image"
    assert any(source == script for _, source, _ in host_mounts())
    assert ":'password'" in script.read_text() or "PASSWORD" not in script.read_text()


def test_the_readme_says_how_to_check_and_start_the_stack_where_docker_runs():
    readme = (ROOT / "README.md").read_text()
    for step in ("cp deploy/compose.env.example .env", "docker compose config", "docker compose up --build"):
        assert step in readme, step
