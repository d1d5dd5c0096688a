"""Tasks for tests only, loaded into a test's worker with `celery worker --include tests.support.poison`
(never by the production app): one that kills its worker process, one that fails as a bug would.

Each start is written to a file first, so a test can count how often the task was started.
"""

from __future__ import annotations

import os

from celery import shared_task
from sqlalchemy import create_engine, text

DIE_IF = "wheel.test.die_if"
FAIL_WITH = "wheel.test.fail_with"


def _note(log_path: str, marker: str) -> None:
    with open(log_path, "a") as log:
        log.write(f"{marker}\n")


@shared_task(name=DIE_IF)
def die_if(marker: str, victim: str, log_path: str) -> str:
    """Kill the worker process (as the out-of-memory killer would) when `marker` is `victim`."""
    _note(log_path, marker)
    if marker == victim:
        os._exit(9)
    return "survived"


@shared_task(name=FAIL_WITH)
def fail_with(database_url: str, sql: str, log_path: str) -> str:
    """Run `sql` on Postgres: a statement Postgres refuses is an error no task expects."""
    _note(log_path, sql)
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()
    return "ran"
