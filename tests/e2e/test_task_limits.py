"""Every task ends in a bounded number of attempts, and says so with an event: a task that kills
its worker process each time it runs (acks_late with reject_on_worker_lost would deliver it again
for ever), and a task that fails with an error nobody expected (it would be re-driven in silence).

A real Celery worker (prefork, 2 processes) on the test Redis, with the test-only tasks of
tests/support/poison.py loaded through `--include`.
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from tests.support.poison import DIE_IF, FAIL_WITH
from tests.support.processes import Process, celery_worker, wait_for
from workers.bootstrap import celery_app

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def stack(stack_factory, tmp_path):
    stack = stack_factory({})
    worker = Process("worker0", celery_worker(f"limits-{uuid.uuid4().hex[:6]}", "oms,notifications", 2)
                     + ["--include", "tests.support.poison"], stack.env, tmp_path)
    stack.workers.append(worker)
    stack.start_worker(worker)
    return stack


def starts(path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []


def test_a_task_that_kills_its_worker_is_started_a_bounded_number_of_times_then_abandoned_loudly(stack, tmp_path):
    log = tmp_path / "starts.log"
    app = celery_app(stack.settings)
    app.send_task(DIE_IF, args=["poison", "poison", str(log)], queue="oms")
    app.send_task(DIE_IF, args=["fine", "poison", str(log)], queue="oms")

    [abandoned] = wait_for(lambda: stack.events("system/task-abandoned"), 90, "the task to be abandoned")
    limit = stack.settings.task_max_deliveries
    assert starts(log).count("poison") == limit
    assert abandoned.level == "error"
    assert abandoned.payload["task"] == DIE_IF and abandoned.payload["args"] == ["poison", "poison", str(log)]
    assert f"started {limit} times" in abandoned.payload["error"]
    # The alert went out (no Slack configured here: the log sender, wheel/notifications.py).
    wait_for(lambda: "ALERT :rotating_light: system/task-abandoned" in stack.workers[0].output(), 30, "the alert")
    time.sleep(3)  # and it is not delivered again
    assert starts(log).count("poison") == limit
    assert starts(log).count("fine") == 1
    assert stack.workers[0].alive()
    assert not redis.Redis.from_url(stack.settings.redis_url).keys("wheel:task-starts:*")


def test_a_task_failing_with_an_error_nobody_expected_ends_with_an_event(stack, tmp_path):
    log = tmp_path / "starts.log"
    app = celery_app(stack.settings)
    app.send_task(FAIL_WITH, args=[stack.settings.database_url, "SELECT 1 / 0", str(log)], queue="oms")

    [failed] = wait_for(lambda: stack.events("system/task-failed"), 60, "the failure event")
    assert failed.level == "error" and failed.payload["task"] == FAIL_WITH
    assert failed.payload["error"].startswith("DataError: (psycopg.errors.DivisionByZero) division by zero")
    wait_for(lambda: "ALERT :rotating_light: system/task-failed" in stack.workers[0].output(), 30, "the alert")
    time.sleep(2)
    assert starts(log) == ["SELECT 1 / 0"]  # one attempt: not retried, not redelivered
