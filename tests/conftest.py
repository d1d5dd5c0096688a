"""Fixtures: the test database (built by the migrations), settings with queues of their own, stacks."""

from __future__ import annotations

import pytest

from tests.support import services
from tests.support.stack import Stack
from wheel.db import make_engine, make_sessionmaker


@pytest.fixture(scope="session")
def database_url() -> str:
    services.recreate_database(services.TEST_DATABASE_URL)
    return services.TEST_DATABASE_URL


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, pool_size=2)
    services.truncate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


@pytest.fixture
def settings(database_url):
    settings = services.test_settings()
    yield settings
    services.delete_queues(services.TEST_AMQP_URL, [*settings.oms_queues.values(), settings.queue_backout,
                                                   settings.queue_orders, settings.queue_cancellations])


@pytest.fixture
def stack_factory(engine, settings, tmp_path, request):
    services.flush_redis(settings.redis_url)
    stacks: list[Stack] = []

    def make(sandbox_channels: dict, **overrides) -> Stack:
        stack = Stack(settings.model_copy(update=overrides), tmp_path, sandbox_channels)
        stacks.append(stack)
        return stack

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for stack in stacks:
        if failed:
            print(stack.logs())
        stack.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
