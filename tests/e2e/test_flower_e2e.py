"""Flower, started by `wheelctl flower` as the Procfile and docker-compose.yml do, shows Wheel's
workers, the marketplace queues and a finished task in a real browser (headless Chromium), behind
HTTP basic auth, and the password shows nowhere: not on Flower's command line, not in its log."""

from __future__ import annotations

import re
import secrets

import pytest
import requests

from tests.support.browser import dump_dom
from tests.support.processes import Process, wait_for, wheelctl
from tests.support.services import free_port
from workers import queues
from workers.bootstrap import celery_app

pytestmark = [pytest.mark.e2e]


def flower_up(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthcheck", timeout=2).text == "OK"
    except requests.RequestException:
        return False


def test_flower_shows_the_marketplace_queues_and_a_finished_task_to_a_browser_with_the_password(
        stack_factory, tmp_path):
    stack = stack_factory({})
    stack.add_channel("FL", "token-fl")  # a Tata CLiQ channel with nothing to push
    worker = stack.add_worker(",".join(queues.MARKETPLACE_QUEUES), concurrency=1)
    node = re.search(r"-n (\S+)@%h", " ".join(worker.argv)).group(1)

    password = secrets.token_urlsafe(16)
    port = free_port()
    flower = Process("flower", wheelctl("flower"), {**stack.env, "WHEEL_FLOWER_PORT": str(port),
                                                    "WHEEL_FLOWER_BASIC_AUTH": f"ops:{password}"}, tmp_path)
    stack.workers.append(flower)  # stopped (and its log shown on failure) with the stack
    flower.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: flower_up(url) or not flower.alive(), 60, "Flower to answer")
    assert flower.alive(), flower.output()[-3000:]
    browse = f"http://ops:{password}@127.0.0.1:{port}"

    # The workers page: Wheel's worker, as Flower found it.
    wait_for(lambda: node in dump_dom(f"{browse}/workers", tmp_path / "chromium"), 60, f"{node} on Flower's workers page")

    app = celery_app(stack.settings)
    task = app.send_task(queues.SYNC, args=["FL"], queue=queues.marketplace_queue("tatacliq"))
    wait_for(lambda: f"[{task.id}] succeeded" in worker.output(), 30, "the sync task to finish")

    def task_row() -> str | None:
        dom = dump_dom(f"{browse}/tasks", tmp_path / "chromium")
        row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{task.id}(?:(?!</tr>).)*</tr>", dom, re.S)
        return row.group(0) if row else None

    row = wait_for(task_row, 60, "the finished task on Flower's tasks page", interval=1)
    assert queues.SYNC in row and "SUCCESS" in row and node in row, row

    broker = dump_dom(f"{browse}/broker", tmp_path / "chromium")
    for queue in queues.MARKETPLACE_QUEUES:
        assert f">{queue}<" in broker.replace(" ", "").replace("\n", ""), f"{queue} not on the broker page"

    # Without the password: nothing.
    assert requests.get(f"{url}/broker", timeout=5).status_code == 401
    assert requests.get(f"{url}/tasks", auth=("ops", "wrong"), timeout=5).status_code == 401
    assert "marketplace." not in dump_dom(f"{url}/broker", tmp_path / "chromium")

    # The password is in Flower's environment only.
    with open(f"/proc/{flower.pid}/cmdline", "rb") as handle:
        cmdline = handle.read().decode()
    assert "flower" in cmdline and "--address=127.0.0.1" in cmdline and password not in cmdline
    assert "basic auth for ops" in flower.output() and password not in flower.output()
