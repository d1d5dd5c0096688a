"""docker-compose.yml exposes nothing with a known or missing password: Postgres and Redis stay
inside the compose network, what is published listens on 127.0.0.1 only, every password comes from
the environment with no default, Redis and Flower ask for one, Wheel is not Postgres's superuser,
and the long-running services come back after a crash. (No Docker engine here: the file is read.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = (ROOT / "docker-compose.yml").read_text()


def blocks() -> dict[str, str]:
    """The text of each service (and of the x- anchors), by name."""
    out: dict[str, str] = {}
    section = name = None
    for line in COMPOSE.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            section = line.split(":")[0]
            name = section if section.startswith("x-") else None
            if name:
                out[name] = ""
        elif section == "services" and indent == 2:
            name = line.strip().rstrip(":")
            out[name] = ""
        elif name:
            out[name] += line.strip() + "\n"
    return out


def test_published_ports_listen_on_localhost_only_and_postgres_and_redis_are_not_published():
    services = blocks()
    assert not re.search(r"ports:\s*\n\s*-", COMPOSE), "write ports as a [...] list, so they are checked"
    published = [p.strip().strip("'\"") for group in re.findall(r"ports:\s*\[([^\]]*)\]", COMPOSE) for p in group.split(",")]
    assert published and all(p.startswith("127.0.0.1:") for p in published), published
    assert "ports" not in services["postgres"] and "ports" not in services["redis"]


def test_every_password_comes_from_the_environment_without_a_default():
    assert "passw0rd" not in COMPOSE and not re.search(r"POSTGRES_PASSWORD:\s*wheel\b", COMPOSE)
    references = re.findall(r"\$\{([A-Z_]+)(:?[-?])?[^}]*\}", COMPOSE)
    secret = [(name, how) for name, how in references if re.search(r"PASSWORD|AUTH|SECRET|TOKEN", name)]
    assert secret and all(how == ":?" for _, how in secret), secret
    example = (ROOT / "deploy/compose.env.example").read_text()
    assert {name for name, _ in secret} <= set(re.findall(r"^([A-Z_]+)=$", example, re.M))


def test_redis_and_flower_ask_for_a_password_and_wheel_is_not_the_superuser():
    services = blocks()
    assert "--requirepass" in services["redis"]
    urls = dict(re.findall(r"(WHEEL_\w+_URL): (\S+)", COMPOSE))
    assert urls["WHEEL_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
    assert urls["WHEEL_DATABASE_URL"].startswith("postgresql+psycopg://wheel:${WHEEL_DB_PASSWORD")
    assert "FLOWER_BASIC_AUTH: ${FLOWER_BASIC_AUTH:?" in services["flower"] or "--basic-auth" in services["flower"]


def test_long_running_services_restart_after_a_crash():
    services = blocks()
    anchor = services.pop("x-wheel")
    for name, block in services.items():
        if name == "migrate":
            assert 'restart: "no"' in block
            continue
        inherited = "<<: *wheel" in block and "restart: unless-stopped" in anchor and "restart:" not in block
        assert "restart: unless-stopped" in block or inherited, name
