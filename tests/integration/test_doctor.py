"""`wheelctl doctor` when something is not fine (the healthy set-up is tests/e2e/test_doctor_e2e.py)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alembic.script import ScriptDirectory
from sqlalchemy import text

from tests.integration.test_cli import run
from tests.support.services import free_port
from wheel.db.migrate import alembic_config
from wheel.services.channels import add_channel
from wheel.services.doctor import FAIL, OK, WARN, Check, sentry, slack, within
from workers.checks import HOW_TO_START


def checks(result) -> dict[str, dict]:
    assert "Traceback" not in result.stderr, result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_with_redis_not_answering_doctor_names_redis_and_the_command_that_starts_it(settings, engine):
    port = free_port()
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    started = time.monotonic()
    result = run(down, "doctor", "--json", check=False)
    assert result.returncode == 1
    found = checks(result)
    assert found["Redis"]["status"] == FAIL and f"127.0.0.1:{port}" in found["Redis"]["detail"]
    assert found["Redis"]["fix"] == HOW_TO_START["Redis"]
    assert found["workers"]["status"] == FAIL  # they are asked through Redis
    assert found["Postgres"]["status"] == OK and found["schema"]["status"] == OK
    assert time.monotonic() - started < 45

    table = run(down, "doctor", check=False)
    assert table.returncode == 1 and "Redis" in table.stdout and "redis-server" in table.stdout


def test_doctor_with_postgres_down_says_how_to_start_it_and_skips_what_needs_it(settings):
    down = settings.model_copy(update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"})
    found = checks(run(down, "doctor", "--json", check=False))
    assert found["Postgres"]["status"] == FAIL and found["Postgres"]["fix"] == HOW_TO_START["Postgres"]
    assert "schema" not in found and "beat" not in found


def test_a_channel_without_its_secret_fails_with_where_to_put_it(settings, sessions, tmp_path):
    with sessions.begin() as session:
        add_channel(session, channel_id="UQ", marketplace="tatacliq", base_url="http://127.0.0.1:9/tatacliq",
                    credentials_ref="tatacliq-uq", known_marketplaces=("tatacliq",))
    found = checks(run(settings.model_copy(update={"secrets_dir": tmp_path}), "doctor", "--json", check=False))
    secret = found["secret tatacliq-uq"]
    assert secret["status"] == FAIL and "WHEEL_SECRET_TATACLIQ_UQ" in secret["fix"] and str(tmp_path) in secret["fix"]
    assert "channel UQ (tatacliq)" not in found  # nothing to call the marketplace with


def test_schema_behind_the_migrations_says_wheelctl_migrate(settings, engine):
    with engine.begin() as connection:
        head = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        behind = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_revision(head).down_revision
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": behind})
    try:
        found = checks(run(settings, "doctor", "--json", check=False))
        assert found["schema"]["status"] == FAIL and found["schema"]["fix"] == "wheelctl migrate"
        assert "behind" in found["schema"]["detail"]
    finally:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :h"), {"h": head})


def test_invalid_settings_are_the_doctors_first_failed_check(settings):
    result = run(settings.model_copy(update={"display_tz": "Mars/Olympus"}), "doctor", "--json", check=False)
    assert result.returncode == 1
    [check] = json.loads(result.stdout)["checks"]
    assert check["name"] == "settings" and check["status"] == FAIL and "WHEEL_DISPLAY_TZ" in check["detail"]


def test_a_check_that_hangs_is_cut_off_and_one_that_breaks_is_a_failure():
    started = time.monotonic()
    hung = within("slow", lambda: time.sleep(30) or [], timeout_s=0.5)
    broken = within("broken", lambda: 1 / 0)
    assert hung() == [Check("slow", FAIL, "no answer within 0.5 s")]
    assert time.monotonic() - started < 2
    assert broken() == [Check("broken", FAIL, "ZeroDivisionError: division by zero")]


def test_sentry_dsn_is_parsed_and_never_sent():
    assert sentry(None)[0].status == OK
    [bad] = sentry("not a dsn")
    assert bad.status == FAIL and "WHEEL_SENTRY_DSN" in bad.fix
    [good] = sentry("https://abc123@o1.ingest.sentry.io/42")
    assert good.status == OK and "42" in good.detail and "abc123" not in good.detail


def test_a_slack_webhook_is_only_said_to_be_configured():
    assert slack(None, "https://hooks.slack.com/services/T/B/SECRET") == [
        Check("Slack", OK, "incoming webhook configured (not posted to)")]
    assert slack(None, None)[0].status == OK and WARN not in slack(None, None)[0].status


class SlackStandIn(BaseHTTPRequestHandler):
    """A stand-in for Slack's Web API auth.test (Slack cannot be reached from here): `xoxb-good` is
    a valid bot token, anything else gets Slack's `invalid_auth` (https://api.slack.com/methods/auth.test)."""

    posted: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        SlackStandIn.posted.append(self.path)
        if self.headers.get("Authorization") == "Bearer xoxb-good":
            answer = {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "wheel", "bot_id": "B1"}
        else:
            answer = {"ok": False, "error": "invalid_auth"}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_slack_bot_token_is_checked_with_auth_test_and_a_refused_one_fails_with_the_fix():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlackStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/api/"
    try:
        [good] = slack("xoxb-good", None, base_url=base)
        [bad] = slack("xoxb-revoked", None, base_url=base)
    finally:
        server.shutdown()
        server.server_close()
    assert good == Check("Slack", OK, "auth.test: bot wheel in Acme")
    assert bad.status == FAIL and "invalid_auth" in bad.detail and "WHEEL_SLACK_TOKEN" in bad.fix
    assert "xoxb" not in bad.detail + good.detail
    assert SlackStandIn.posted == ["/api/auth.test", "/api/auth.test"]  # nothing posted to a channel
    [down] = slack("xoxb-good", None, base_url=base)
    assert down.status == FAIL and "could not be reached" in down.detail
