"""`wheelctl doctor` on a healthy set-up of real processes: the sandbox with one channel of each
marketplace, the bridge, a worker on every queue and beat. Every check is ok; then a channel whose
credentials the marketplace refuses fails its check, with the fix."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from bridge.transports import transport_for_settings
from tests.support.processes import wait_for, wheelctl
from workers import queues

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

AMAZON = {"client_id": "lwa-uz", "client_secret": "lwa-secret-uz", "refresh_token": "refresh-uz"}
FLIPKART = {"app_id": "app-uf", "app_secret": "secret-uf"}


def doctor(stack) -> tuple[int, dict]:
    result = subprocess.run(wheelctl("doctor", "--json"), env={**os.environ, **stack.env}, capture_output=True,
                            text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_doctor_on_a_healthy_stack_is_all_green_and_a_refused_credential_fails_with_the_fix(stack_factory):
    stack = stack_factory({
        "UA": {"marketplace": "tatacliq", "token": "token-ua"},
        "UF": {"marketplace": "flipkart", "client_id": FLIPKART["app_id"], "token": FLIPKART["app_secret"]},
        "UZ": {"marketplace": "amazon", "client_id": AMAZON["client_id"], "client_secret": AMAZON["client_secret"],
               "token": AMAZON["refresh_token"]},
        "UB": {"marketplace": "tatacliq", "token": "the-right-token"},
    })
    stack.add_channel("UA", "token-ua")
    stack.add_channel("UF", json.dumps(FLIPKART), marketplace="flipkart")
    stack.add_channel("UZ", json.dumps(AMAZON), marketplace="amazon")
    stack.start_sandbox()
    stack.start_bridge()  # declares the OMS queues and the backout queue
    # The publisher declares these at its first put; as if an order had gone out already.
    transport = transport_for_settings(stack.settings)
    transport.connect()
    transport.declare([stack.settings.queue_orders, stack.settings.queue_cancellations])
    transport.close()
    stack.add_worker(",".join(queues.ALL_QUEUES), concurrency=1)
    stack.start_beat()
    wait_for(lambda: stack.scalar("SELECT count(*) FROM heartbeats WHERE name = 'beat'"), 30, "beat's first tick")

    status, report = doctor(stack)
    not_ok = [c for c in report["checks"] if c["status"] != "ok"]
    assert not_ok == [] and status == 0 and report["status"] == "ok", json.dumps(not_ok, indent=1)
    names = {c["name"] for c in report["checks"]}
    assert {"settings", "Postgres", "schema", "Redis", "OMS transport (RabbitMQ)", "Slack", "Sentry", "beat",
            "channel UA (tatacliq)", "channel UF (flipkart)", "channel UZ (amazon)"} <= names
    assert {f"queue {q}" for q in [*stack.settings.oms_queues.values(), stack.settings.queue_backout,
                                   stack.settings.queue_orders, stack.settings.queue_cancellations]} <= names
    assert {f"worker queue {q}" for q in queues.ALL_QUEUES} <= names
    # Only the token calls reached the marketplaces for the doctor: nothing listed, nothing changed.
    assert all(stack.state(channel) == {} for channel in ("UA", "UF", "UZ"))

    stack.add_channel("UB", "a-wrong-token")
    status, report = doctor(stack)
    [refused] = [c for c in report["checks"] if c["status"] != "ok"]
    assert status == 1 and report["status"] == "fail"
    assert refused["name"] == "channel UB (tatacliq)" and refused["status"] == "fail"
    assert "HTTP 401" in refused["detail"] and "a-wrong-token" not in json.dumps(report)
    assert "WHEEL_SECRET_TATACLIQ_UB" in refused["fix"] and str(stack.settings.secrets_dir / "tatacliq-ub") in refused["fix"]
