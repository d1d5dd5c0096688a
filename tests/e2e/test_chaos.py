"""The chaos run (tests/chaos/, `make chaos` for the full five minutes), for 45 seconds with a
smaller load: the whole stack on private Postgres, Redis and RabbitMQ while processes are
SIGKILLed, Redis is restarted empty twice, the OMS broker stops, Postgres restarts and the
marketplaces refuse or slow down a share of calls. Every promise must hold: zero violations."""

from __future__ import annotations

import os

import pytest

from tests.chaos import report as reporting
from tests.chaos.harness import ChaosRun, Config

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


def test_every_promise_holds_while_everything_fails_together(tmp_path):
    config = Config(
        seconds=float(os.environ.get("WHEEL_CHAOS_SECONDS", "45")),
        messages=int(os.environ.get("WHEEL_CHAOS_MESSAGES", "900")),
        skus=int(os.environ.get("WHEEL_CHAOS_SKUS", "100")),
        orders=int(os.environ.get("WHEEL_CHAOS_ORDERS", "200")),
        cancellations=int(os.environ.get("WHEEL_CHAOS_CANCELLATIONS", "30")),
        broker_outage_s=float(os.environ.get("WHEEL_CHAOS_BROKER_OUTAGE_S", "10")),
        drain_timeout_s=float(os.environ.get("WHEEL_CHAOS_DRAIN_TIMEOUT_S", "300")),
        out=tmp_path / "chaos",
    )
    run = ChaosRun(config)
    try:
        report = run.run()
    finally:
        run.teardown(keep_logs=tmp_path / "chaos" / "logs")
    reporting.write(report, config.out)
    reporting.show(report)
    kinds = {fault["kind"] for fault in report["faults"]}
    assert {"sigkill", "restart-empty", "stop", "restart", "sandbox-chaos"} <= kinds, kinds
    assert report["load"]["sandbox_chaos_refused"] > 0
    assert report["drain_s"] is not None, report["errors"]
    assert not report["errors"], report["errors"]
    broken = {name: result for name, result in report["invariants"].items() if result["violations"]}
    assert not broken, broken
