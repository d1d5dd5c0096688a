"""With Postgres, Redis or the OMS broker not answering, every `wheelctl` command says so in one
line (the service, its redacted URL, the command that starts it) and exits 2: no traceback.

The services are not stopped (others use them): the settings point at a port where nothing listens.
"""

from __future__ import annotations

from tests.integration.test_cli import run
from tests.support.services import free_port
from workers.checks import HOW_TO_START

SAMPLE = "tests/samples/ranging.xml"


def one_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_events_with_postgres_down_names_postgres_and_how_to_start_it(settings):
    port = free_port()
    down = settings.model_copy(update={"database_url": f"postgresql+psycopg://postgres:pw@127.0.0.1:{port}/wheel_x"})
    line = one_line(run(down, "events", check=False))
    assert line.startswith("error: Postgres at ") and f"127.0.0.1:{port}/wheel_x" in line
    assert ":pw@" not in line and HOW_TO_START["Postgres"] in line


def test_oms_put_with_the_broker_down_names_rabbitmq_and_how_to_start_it(settings):
    port = free_port()
    down = settings.model_copy(update={"oms_url": f"amqp://guest:guest@127.0.0.1:{port}//"})
    line = one_line(run(down, "oms", "put", "ranging", SAMPLE, check=False))
    assert line.startswith("error: RabbitMQ at ") and f"127.0.0.1:{port}" in line
    assert "guest:guest" not in line and HOW_TO_START["RabbitMQ"] in line


def test_sending_a_task_with_redis_down_names_redis_and_how_to_start_it(settings, engine):
    run(settings, "channels", "add", "UA", "--marketplace", "tatacliq", "--base-url", "http://127.0.0.1:1/tatacliq",
        "--credentials-ref", "tatacliq-ua")
    port = free_port()
    down = settings.model_copy(update={"redis_url": f"redis://:secret@127.0.0.1:{port}/0"})
    line = one_line(run(down, "jobs", "run-now", "UA", "orders", check=False))
    assert line.startswith("error: Redis at ") and f"127.0.0.1:{port}/0" in line
    assert "secret" not in line and HOW_TO_START["Redis"] in line


def test_a_missing_database_says_to_run_migrate(settings):
    missing = settings.model_copy(update={"database_url": settings.database_url.rsplit("/", 1)[0] + "/wheel_no_such_db"})
    line = one_line(run(missing, "events", check=False))
    assert "wheel_no_such_db" in line and "wheelctl migrate" in line
