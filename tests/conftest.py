"""Fixtures: the test database (built by the migrations), settings with queues of their own, stacks."""

from __future__ import annotations

import pytest
from sqlalchemy import text

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
def listing_trigger(engine):
    """`listing_trigger(sku, body)`: a trigger on listings rows of that SKU running the PL/pgSQL
    `body` (to make Postgres refuse them, or hold them); installed again, it replaces the last."""

    def install(sku: str, body: str) -> None:
        with engine.begin() as connection:
            connection.execute(text(f"""
                CREATE OR REPLACE FUNCTION wheel_test_listing() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF NEW.sku = '{sku}' THEN {body} END IF;
                  RETURN NEW;
                END $$"""))
            connection.execute(text("CREATE OR REPLACE TRIGGER wheel_test_listing BEFORE INSERT OR UPDATE ON listings "
                                    "FOR EACH ROW EXECUTE FUNCTION wheel_test_listing()"))

    yield install
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER IF EXISTS wheel_test_listing ON listings"))


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


# `make test` runs two pytest-xdist workers, handing out one test at a time (--maxschedchunk 1).
# The slowest tests go first, longest first, so that each worker starts on one while the other
# takes the short ones, and no long test starts last and holds up the end of the run.
SLOWEST_FIRST = ("test_chaos.py", "test_bridge_outages.py", "test_latest_value_wins.py", "test_orders_e2e.py",
                 "test_crash_safety.py", "test_alerts_e2e.py", "test_oms_corpus_e2e.py", "test_bridge_standby.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> tuple[int, int]:
        if item.path.name in SLOWEST_FIRST:
            return 0, SLOWEST_FIRST.index(item.path.name)
        return (1, 0) if item.get_closest_marker("e2e") else (2, 0)

    items.sort(key=rank)  # stable: each file's tests keep their order
