"""Logs and error reports of the real processes: with WHEEL_LOG_FORMAT=json the bridge, a worker,
beat and wheelctl write nothing but JSON lines while a message flows through; with a Sentry DSN a
worker's error and beat's check-ins reach Sentry (a stand-in of its ingest endpoint,
tests/support/sentry_standin.py), named by host, process and pid, and with no secret in them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid

import pytest

from tests.support.poison import FAIL_WITH
from tests.support.processes import Process, celery_worker, wait_for, wheelctl
from tests.support.sentry_standin import SentryStandIn
from wheel import __version__
from workers import queues
from workers.bootstrap import celery_app

pytestmark = [pytest.mark.e2e]

# The channel's secret, which no log line and no report may show.
CHANNEL_SECRET = "s3cret-" + uuid.uuid4().hex
SANDBOX = {"UA": {"marketplace": "tatacliq", "token": CHANNEL_SECRET}}
RANGING = (b'<EXTNChannelList><EXTNChannelItemList><EXTNChannelItem ChannelID="UA" EAN="EAN_1" ItemID="SKU1" '
           b'RangeFlag="Y"/></EXTNChannelItemList></EXTNChannelList>')


def secrets_of(settings) -> list[str]:
    """What must never be printed: the channel's secret, and the password of each service URL as
    it would stand in the URL (the test broker's user and password are both "guest")."""
    found = [CHANNEL_SECRET]
    for url in (settings.database_url, settings.redis_url, settings.oms_url.get_secret_value()):
        userinfo, at, _ = url.partition("//")[2].partition("@")
        if at and ":" in userinfo:
            found.append(f":{userinfo.partition(':')[2]}@")
    return found


def log_lines(text: str) -> list[str]:
    # The "=== start" lines are the test harness's own (tests/support/processes.py).
    return [line for line in text.splitlines() if line.strip() and not line.startswith("=== start")]


def test_every_process_writes_only_json_lines_with_the_work_in_hand(stack_factory):
    stack = stack_factory(SANDBOX, log_format="json")
    stack.add_channel("UA", CHANNEL_SECRET)
    stack.start_sandbox()
    worker = stack.add_worker()
    bridge = stack.start_bridge()
    beat = stack.start_beat()

    stack.put("ranging", RANGING)
    wait_for(lambda: stack.events("ranging/succeeded"), 20, "the message to reach the marketplace")
    wait_for(lambda: "Sending due task sweep" in beat.output(), 20, "beat to send the sweeper")
    cli = subprocess.run(wheelctl("--log-level", "DEBUG", "services", "check"),
                         env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    for process in (bridge, worker, beat):
        process.stop()  # their lines on the way out too

    outputs = {"bridge": bridge.output(), "worker": worker.output(), "beat": beat.output(), "wheelctl": cli.stderr}
    parsed: dict[str, list[dict]] = {}
    for name, text in outputs.items():
        lines = log_lines(text)
        assert lines or name == "wheelctl", f"{name} wrote nothing"
        parsed[name] = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                pytest.fail(f"{name} wrote a line that is not JSON: {line!r}")
            assert isinstance(entry, dict) and {"time", "level", "process", "message", "logger"} <= set(entry), line
            parsed[name].append(entry)
        for secret in secrets_of(stack.settings):
            assert secret not in text, f"{name} wrote a secret"

    assert {e["process"] for e in parsed["bridge"]} == {"wheel-bridge"}
    assert {e["process"] for e in parsed["worker"]} == {"wheel-worker"}
    assert {e["process"] for e in parsed["beat"]} == {"wheel-beat"}
    assert any("bridge consuming" in e["message"] for e in parsed["bridge"])
    # The task's own lines carry the task (the bridge's chunk of messages, named by their ids) and
    # the message it works on; the event's line its id.
    [ranged] = [e for e in parsed["worker"] if e["message"].startswith("oms/items-ranged")]
    [inbox_id] = [m.inbox_id for m in [stack.events("oms/items-ranged")[0]]]
    assert ranged["inbox_id"] == inbox_id and ranged["task_name"] == queues.PROCESS_MESSAGES
    assert ranged["inbox_ids"] == [inbox_id]
    assert ranged["task_id"] and ranged["event_id"] == stack.events("oms/items-ranged")[0].id
    [synced] = [e for e in parsed["worker"] if e["message"].startswith("ranging/succeeded")]
    assert synced["channel_id"] == "UA" and synced["task_name"] == queues.SYNC
    # Celery's own lines are JSON too, and say which task they are about.
    done = [e for e in parsed["worker"] if "succeeded in" in e["message"] and e.get("task_id") == ranged["task_id"]]
    assert done and done[0]["logger"].startswith("celery")
    assert any(e["level"] == "DEBUG" for e in parsed["wheelctl"])


def test_errors_of_a_worker_and_the_bridge_and_beat_check_ins_reach_sentry_without_secrets(stack_factory, tmp_path):
    sentry = SentryStandIn().start()
    try:
        stack = stack_factory({}, sentry_dsn=sentry.dsn, sentry_environment="e2e-test", sentry_checkin_interval_s=1,
                              bridge_max_attempts=1)
        stack.env["WHEEL_SECRET_TATACLIQ_UA"] = CHANNEL_SECRET  # a credential the worker holds
        worker = Process("worker0", celery_worker(f"sentry-{uuid.uuid4().hex[:6]}", "oms,notifications", 2)
                         + ["--include", "tests.support.poison"], stack.env, tmp_path)
        stack.workers.append(worker)
        stack.start_worker(worker)
        stack.start_beat()
        stack.start_bridge()

        # A message Postgres cannot store (a NUL in its id) goes to the backout queue: an error in the bridge.
        stack.put("ranging", b"<EXTNChannelList/>", message_id="poison\x00id")
        app = celery_app(stack.settings)
        # An error nobody expected, in a task.
        app.send_task(FAIL_WITH, args=[stack.settings.database_url, "SELECT 1 / 0", str(tmp_path / "starts.log")],
                      queue="oms")
        errors = wait_for(lambda: [e for e in sentry.items("event") if e.get("level") == "error"
                                   and ":wheel-worker:" in e["server_name"]], 60, "the worker's error to reach Sentry")
        [bridge_error, *_] = wait_for(lambda: [e for e in sentry.items("event") if ":wheel-bridge:" in e["server_name"]],
                                      30, "the bridge's error to reach Sentry")
        checkins = wait_for(lambda: len(sentry.items("check_in")) >= 2 and sentry.items("check_in"), 30,
                            "two check-ins from beat")
        sentry_raw = sentry.raw().decode("utf-8", "replace")
    finally:
        sentry.stop()

    event = errors[0]
    host = socket.gethostname()
    assert event["server_name"].startswith(f"{host}:wheel-worker:")
    assert int(event["server_name"].rpartition(":")[2]) != worker.pid  # a pool process, named by its own pid
    assert event["environment"] == "e2e-test" and event["release"] == f"wheel-middleware@{__version__}"
    assert "DivisionByZero" in sentry_raw
    assert bridge_error["server_name"] == f"{host}:wheel-bridge:{stack.bridge.pid}" and bridge_error["level"] == "error"
    assert bridge_error["environment"] == "e2e-test"
    for secret in secrets_of(stack.settings):
        assert secret not in sentry_raw
    assert all(c["monitor_slug"] == "wheel-beat" and c["status"] == "ok" for c in checkins)
    assert checkins[0]["monitor_config"]["schedule"] == {"type": "interval", "value": 1, "unit": "minute"}
    assert checkins[0]["environment"] == "e2e-test"
