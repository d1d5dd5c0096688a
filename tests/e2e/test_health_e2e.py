"""With beat stopped, the pulls stop, and nothing fails: no error event would ever say so. The
health check, run by a worker's own timer (beat cannot run it while it is stopped), says it
within two pull intervals, through the alert path; when beat is back the alerts clear.

Real processes: the sandbox (Tata CLiQ's orders API), a worker (pulls, alerts, publisher) and
beat, pulling every 4 seconds. The alerter is the log (no Slack here): its `ALERT` lines are read
from the worker's log.
"""

from __future__ import annotations

import time

import pytest

from tests.support.processes import wait_for
from wheel.db.models import Channel
from wheel.services.schedules import ensure_schedules

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

INTERVAL_S = 4
EVERY_4S = "* * * * * */4"


def open_alerts(stack, name):
    return stack.scalar("SELECT count(*) FROM health_alerts WHERE name = :n AND cleared_at IS NULL", n=name)


def test_with_beat_stopped_a_lag_alert_fires_within_two_intervals_and_clears_when_beat_is_back(stack_factory):
    stack = stack_factory({"UT": {"marketplace": "tatacliq", "token": "token-ut"}},
                          health_check_interval_s=0.5, health_pull_missed_intervals=1.25,
                          health_beat_max_silence_s=3, health_inspect_timeout_s=0.3)
    stack.start_sandbox()
    stack.add_channel("UT", "token-ut")
    with stack.sessions.begin() as session:
        ensure_schedules(session, session.get(Channel, "UT"), jobs={"orders": EVERY_4S})
    stack.start_beat()
    worker = stack.add_worker("oms,notifications,publisher,marketplace.tatacliq", concurrency=2)
    assert "health checks every 0.5s in this worker" in worker.output()

    succeeded = "SELECT count(*) FROM job_runs WHERE status = 'succeeded'"
    wait_for(lambda: stack.scalar(succeeded) >= 2, 40, "two pulls to succeed")
    # Steady state: whatever a slow start opened has cleared, and nothing is late.
    wait_for(lambda: stack.scalar("SELECT count(*) FROM health_alerts WHERE cleared_at IS NULL") == 0, 20,
             "no open health alerts")

    stopped_at = stack.scalar("SELECT now()")
    stack.beat.stop()
    wait_for(lambda: open_alerts(stack, "pull-lag") == 1, 3 * INTERVAL_S, "the pull-lag alert")
    opened_after = stack.scalar("SELECT extract(epoch FROM opened_at - :t) FROM health_alerts WHERE name = 'pull-lag'",
                                t=stopped_at)
    print(f"the lag alert opened {opened_after:.1f}s after beat was stopped")
    assert opened_after <= 2 * INTERVAL_S, f"the lag alert took {opened_after:.1f}s"
    wait_for(lambda: open_alerts(stack, "beat") == 1, 2 * INTERVAL_S, "the beat alert")
    [lag] = stack.events("system.health/pull-lag")
    assert lag.level == "error" and lag.channel_id == "UT" and "wheelctl jobs list --channel UT" in lag.payload["error"]
    # Through the alert path (the notifications queue), as any error event.
    wait_for(lambda: "ALERT :rotating_light: system.health/pull-lag on channel UT" in worker.output(), 10,
             "the alert to be sent")
    runs_while_stopped = stack.scalar(succeeded)
    time.sleep(1)
    assert stack.scalar(succeeded) == runs_while_stopped  # beat really is stopped: nothing pulls

    stack.start_beat()
    wait_for(lambda: open_alerts(stack, "pull-lag") == 0 and open_alerts(stack, "beat") == 0, 6 * INTERVAL_S,
             "the alerts to clear")
    assert stack.scalar(succeeded) > runs_while_stopped
    [cleared] = stack.events("system.health/pull-lag-cleared")
    assert cleared.level == "info" and cleared.channel_id == "UT"
    assert len(stack.events("system.health/beat-cleared")) == 1
    # Beat's own entry ran the check as well, as a task on the oms queue.
    assert "Task wheel.system.health[" in worker.output()
    # Each said once, however many times the checks ran meanwhile.
    assert len(stack.events("system.health/pull-lag")) == 1 and len(stack.events("system.health/beat")) == 1
