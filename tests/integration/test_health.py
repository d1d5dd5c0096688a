"""Health checks against the real Postgres, Redis and RabbitMQ: each alert opens once, with an error
event, and clears (an info event) when its cause does."""

from __future__ import annotations

import uuid

import pytest
import redis
from sqlalchemy import text

from bridge.transports import transport_from_url
from wheel.db.models import Channel
from wheel.services import health, schedules
from wheel.services.channels import add_channel
from workers import health as broker_health
from workers.bootstrap import celery_app

THRESHOLDS = health.Thresholds(pull_missed_intervals=3, unsynced_max_age_s=1800, outbox_max_age_s=300,
                               beat_max_silence_s=120)


@pytest.fixture
def channel(sessions):
    with sessions.begin() as session:
        add_channel(session, channel_id="UT", marketplace="tatacliq", base_url="http://x", credentials_ref="r",
                    known_marketplaces=("tatacliq",))
        session.flush()
        schedules.ensure_schedules(session, session.get(Channel, "UT"), jobs={"orders": "* * * * *"})
        # Switched on long ago (so late, unless a test says otherwise), but off: only the pull tests switch it on.
        session.execute(text("UPDATE schedules SET updated_at = now() - interval '1 day', enabled = false"))
        session.execute(text("UPDATE channels SET updated_at = now() - interval '1 day'"))
        health.beat_ticked(session)
    return "UT"


def check(sessions, broker=None, thresholds=THRESHOLDS):
    return health.run_checks(sessions, thresholds, broker)


def alerts(sessions, name):
    with sessions() as session:
        return session.execute(text("SELECT subject, cleared_at, detail FROM health_alerts WHERE name = :n ORDER BY id"),
                               {"n": name}).all()


def events(sessions, name):
    with sessions() as session:
        return session.execute(text("SELECT level, channel_id, payload FROM events WHERE name = :n ORDER BY id"),
                               {"n": name}).all()


def assert_opened_once_then_cleared(sessions, name, subject, cure, broker=None, cured_broker=None):
    first = check(sessions, broker)
    assert [(r.event.name, r.event.level) for r in first.opened] == [(f"system.health/{name}", "error")]
    again = check(sessions, broker)
    assert again.opened == [] and again.cleared == []  # said once, not on every check
    [alert] = alerts(sessions, name)
    assert alert.subject == subject and alert.cleared_at is None and alert.detail["look"].startswith("wheelctl ")
    [opened] = events(sessions, f"system.health/{name}")
    assert "Look: wheelctl " in opened.payload["error"]
    cure()
    done = check(sessions, cured_broker if cured_broker is not None else broker)
    assert [r.event.name for r in done.cleared] == [f"system.health/{name}-cleared"] and done.opened == []
    [alert] = alerts(sessions, name)
    assert alert.cleared_at is not None
    [cleared] = events(sessions, f"system.health/{name}-cleared")
    assert cleared.level == "info" and cleared.payload["subject"] == subject
    assert check(sessions, cured_broker if cured_broker is not None else broker).cleared == []
    return opened


def test_a_pull_not_succeeding_for_n_intervals_opens_then_clears_on_success(sessions, channel):
    with sessions.begin() as session:
        session.execute(text("UPDATE schedules SET enabled = true"))
        session.execute(text("""INSERT INTO job_runs (schedule_id, due_at, status, finished_at)
                                SELECT id, now() - interval '200 seconds', 'succeeded', now() - interval '170 seconds'
                                  FROM schedules"""))
    assert check(sessions).opened == []  # 170 s behind a 60 s schedule: under 3 intervals
    with sessions.begin() as session:
        session.execute(text("UPDATE job_runs SET finished_at = now() - interval '190 seconds'"))
        session.execute(text("UPDATE schedules SET last_outcome = 'failed', last_error = 'HTTP 503'"))

    def succeed():
        with sessions.begin() as session:
            session.execute(text("""INSERT INTO job_runs (schedule_id, due_at, status, finished_at)
                                    SELECT id, now(), 'succeeded', now() FROM schedules"""))

    opened = assert_opened_once_then_cleared(sessions, health.PULL_LAG, "UT/orders", succeed)
    assert opened.channel_id == "UT" and "HTTP 503" in opened.payload["error"]
    assert "wheelctl jobs list --channel UT" in opened.payload["error"]


def test_a_schedule_switched_on_recently_is_not_late_and_a_disabled_one_is_never_checked(sessions, channel):
    with sessions.begin() as session:
        session.execute(text("UPDATE schedules SET updated_at = now() - interval '100 seconds', enabled = true"))
    assert check(sessions).opened == []
    with sessions.begin() as session:
        session.execute(text("UPDATE schedules SET updated_at = now() - interval '1 hour', enabled = false"))
    assert check(sessions).opened == []


def test_desired_state_not_on_the_marketplace_for_long_opens_then_clears(sessions, channel):
    with sessions.begin() as session:
        session.execute(text("""INSERT INTO listings (channel_id, sku, ean, dirty, dirty_since, last_error) VALUES
            ('UT', 'OLD', 'E1', true, now() - interval '2 hours', 'HTTP 500 from Tata CLiQ'),
            ('UT', 'NEW', 'E2', true, now() - interval '10 seconds', NULL)"""))

    def pushed():
        with sessions.begin() as session:
            session.execute(text("UPDATE listings SET dirty = false WHERE sku = 'OLD'"))

    opened = assert_opened_once_then_cleared(sessions, health.UNSYNCED, "UT", pushed)
    assert opened.payload["oldest_sku"] == "OLD" and opened.payload["skus"] == 1
    assert "HTTP 500" in opened.payload["error"]


def test_an_outbox_waiting_too_long_opens_then_clears_when_published(sessions, channel):
    with sessions.begin() as session:
        session.execute(text("""INSERT INTO outbox (kind, channel_id, order_id, queue, message_id, body, created_at)
                                VALUES ('order', 'UT', 'O1', 'OMS.ORDERS', 'm1', 'x', now() - interval '10 minutes')"""))

    def published():
        with sessions.begin() as session:
            session.execute(text("UPDATE outbox SET sent_at = now()"))

    assert_opened_once_then_cleared(sessions, health.OUTBOX, "oms", published)


def test_beat_silent_opens_then_clears_when_it_ticks(sessions, channel):
    with sessions.begin() as session:
        session.execute(text("UPDATE heartbeats SET at = now() - interval '5 minutes'"))

    def tick():
        with sessions.begin() as session:
            health.beat_ticked(session)

    opened = assert_opened_once_then_cleared(sessions, health.BEAT, "beat", tick)
    assert "last ticked 300s ago" in opened.payload["error"] or "5 min" in opened.payload["error"]


def test_beat_that_never_ticked_is_said(sessions):
    report = check(sessions)
    assert [r.event.payload["subject"] for r in report.opened] == ["beat"]
    assert "never ticked" in report.opened[0].event.payload["error"]


def test_the_oms_backout_queue_counted_on_the_broker_opens_then_clears(sessions, channel, settings):
    transport = transport_from_url(settings.oms_url.get_secret_value())
    transport.connect()
    transport.declare([settings.queue_backout])
    try:
        transport.put(settings.queue_backout, b"<poison/>", message_id=uuid.uuid4().hex)
        depth = broker_health.backout_depth(settings)
        assert depth == 1

        def drained():
            assert transport.get_one(settings.queue_backout, wait_s=5) is not None

        broker = health.Broker(backout_queue=settings.queue_backout, backout_depth=depth)
        assert_opened_once_then_cleared(
            sessions, health.BACKOUT, settings.queue_backout, drained, broker=broker,
            cured_broker=health.Broker(backout_queue=settings.queue_backout,
                                       backout_depth=broker_health.backout_depth(settings) - 1))
        assert broker_health.backout_depth(settings) == 0
    finally:
        transport.close()


def test_a_check_that_could_not_look_clears_nothing(sessions, channel):
    broker = health.Broker(backout_queue="OMS.BACKOUT", backout_depth=3)
    assert len(check(sessions, broker).opened) == 1
    report = check(sessions, health.Broker(backout_queue="OMS.BACKOUT", backout_depth=None))
    assert report.cleared == [] and health.BACKOUT not in report.checked
    assert alerts(sessions, health.BACKOUT)[0].cleared_at is None


def test_a_celery_queue_with_work_and_no_consumer_opens_then_clears(sessions, channel, settings):
    """Real Redis (the broker's lists) and a real broadcast, which no worker answers."""
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.lpush("marketplace.flipkart", "{}", "{}")
    app = celery_app(settings.model_copy(update={"health_inspect_timeout_s": 0.5}))
    try:
        stats = broker_health.celery_queues(app, app.wheel_settings)
        assert stats["marketplace.flipkart"] == health.QueueStat(depth=2, consumers=0)
        assert stats["oms"] == health.QueueStat(depth=0, consumers=0)

        def consumed():
            client.delete("marketplace.flipkart")

        assert_opened_once_then_cleared(
            sessions, health.NO_CONSUMER, "marketplace.flipkart", consumed, broker=health.Broker(queues=stats),
            cured_broker=health.Broker(queues={"marketplace.flipkart": health.QueueStat(0, 0)}))
        assert broker_health.celery_queues(app, app.wheel_settings)["marketplace.flipkart"].depth == 0
    finally:
        client.flushdb()
        app.close()
