"""A throttled marketplace is waited out, never failed: Amazon answers a 429 with no Retry-After
(as SP-API does), and the orders still reach the OMS from one `jobs run-now`, with no alert.

Real processes: the sandbox, one Celery worker for the Amazon queue, the publisher and the
notifications; the pull is started once with `wheelctl jobs run-now`, as an operator would.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.support.processes import wait_for, wheelctl
from wheel.db.models import Channel
from wheel.oms.orders import validate_document
from wheel.services.schedules import ensure_schedules

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SECRET = json.dumps({"client_id": "lwa-uz", "client_secret": "lwa-secret-uz", "refresh_token": "refresh-uz"})
# searchOrders at 200x its documented 0.0056/s: a token every ~0.9 s, so the test waits seconds, not minutes.
SCALE = 200.0


def test_a_search_orders_429_without_retry_after_is_waited_out_and_the_orders_arrive(stack_factory):
    stack = stack_factory({"UZ": {"marketplace": "amazon", "client_id": "lwa-uz", "client_secret": "lwa-secret-uz",
                                  "token": "refresh-uz", "order_lag_s": 1,
                                  # The first SP-API call of the channel is refused with a bare 429.
                                  "fail_status": 429, "fail_times": 1}})
    stack.start_sandbox()
    stack.add_channel("UZ", SECRET, marketplace="amazon", quota_scale=SCALE,
                      options={"seller_id": "UZ", "lwa_url": f"{stack.sandbox_url}/amazon/auth/o2/token",
                               "order_lag_s": 1})
    with stack.sessions.begin() as session:
        ensure_schedules(session, session.get(Channel, "UZ"), jobs={"orders": "0 0 1 1 *"})  # never by itself
    stack.add_worker("marketplace.amazon,publisher,notifications,oms", concurrency=2)
    created = stack.create_orders("UZ", 5, lines_per_order=2, seed=3)
    time.sleep(7)  # past the settle lag (order_lag_s 1 + a 5 s margin), so the window holds the orders

    run = subprocess.run(wheelctl("jobs", "run-now", "UZ", "orders"), env={**os.environ, **stack.env},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr

    taken: list = []

    def arrived():
        taken.extend(stack.drain(stack.settings.queue_orders, wait_s=0.5))
        return len(taken) >= len(created)

    wait_for(arrived, 90, "the orders on the OMS queue", interval=0.5)
    assert sorted(validate_document(d.body) for d in taken) == ["order"] * len(created)
    searches = [c for c in stack.calls("UZ") if c["operation"] == "searchOrders"]
    assert [c["status"] for c in searches][:2] == [429, 200]
    assert stack.events("system.cron/failed") == []
    assert [e.name for e in stack.events() if e.level == "error"] == []
    assert stack.scalar("SELECT count(*) FROM job_runs WHERE status = 'succeeded'") == 1
