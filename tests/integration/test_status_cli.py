"""`wheelctl status`, run as an operator would (a subprocess), against the test database and Redis."""

from __future__ import annotations

import json
from datetime import datetime

import redis
from sqlalchemy import text

from tests.integration.test_cli import run
from wheel.db.models import Channel
from wheel.services import health, schedules
from wheel.services.channels import add_channel


def seed(sessions, settings) -> None:
    with sessions.begin() as session:
        add_channel(session, channel_id="UT", marketplace="tatacliq", base_url="http://x", credentials_ref="r",
                    known_marketplaces=("tatacliq",))
        session.flush()
        schedules.ensure_schedules(session, session.get(Channel, "UT"), jobs={"orders": "* * * * *"})
        session.execute(text("""UPDATE schedules SET updated_at = now() - interval '1 day', last_started_at = now() - interval '70 seconds',
                                last_finished_at = now() - interval '65 seconds', last_outcome = 'failed',
                                last_error = 'HTTP 503 from Tata CLiQ'"""))
        session.execute(text("UPDATE channels SET updated_at = now() - interval '1 day'"))
        session.execute(text("""INSERT INTO listings (channel_id, sku, ean, dirty, dirty_since) VALUES
            ('UT', 'OLDEST', 'E1', true, now() - interval '2 hours'), ('UT', 'NEWER', 'E2', true, now() - interval '1 minute'),
            ('UT', 'DONE', 'E3', false, NULL)"""))
        session.execute(text("""INSERT INTO cancellations (channel_id, order_id, line_id, sku, quantity, status, received_at)
            VALUES ('UT', 'O-9', '1', 'S', 1, 'held', now() - interval '1 hour'), ('UT', 'O-8', '1', 'S', 1, 'sent', now())"""))
        session.execute(text("""INSERT INTO outbox (kind, channel_id, order_id, queue, message_id, body, created_at)
            VALUES ('order', 'UT', 'O1', 'OMS.ORDERS', 'm1', 'x', now() - interval '10 minutes')"""))
        session.execute(text("INSERT INTO heartbeats (name, at) VALUES ('beat', now() - interval '30 seconds')"))
    health.run_checks(sessions, health.Thresholds(3, 1800, 300, 120))
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.lpush("marketplace.tatacliq", "{}", "{}", "{}")


def test_status_json_shows_channels_pulls_queues_outboxes_beat_and_alerts(sessions, settings):
    seed(sessions, settings)
    view = json.loads(run(settings.model_copy(update={"health_inspect_timeout_s": 0.5}), "status", "--json").stdout)

    [channel] = view["channels"]
    assert (channel["id"], channel["unsynced"], channel["oldest_unsynced_sku"]) == ("UT", 2, "OLDEST")
    assert 7190 < channel["oldest_unsynced_age_s"] < 7300
    assert channel["held_cancellations"] == 1
    [pull] = channel["pulls"]
    assert (pull["job"], pull["outcome"], pull["error"]) == ("orders", "failed", "HTTP 503 from Tata CLiQ")
    assert datetime.fromisoformat(pull["last_finished_at"]).utcoffset().total_seconds() == 0
    assert view["queues"]["marketplace.tatacliq"] == {"depth": 3, "consumers": 0}
    assert view["queues"]["oms"] == {"depth": 0, "consumers": 0}
    assert view["outboxes"]["oms"]["waiting"] == 1 and 590 < view["outboxes"]["oms"]["oldest_age_s"] < 700
    assert 25 < view["beat"]["age_s"] < 120
    assert view["backout"] == {"queue": settings.queue_backout, "depth": 0}
    opened = {(a["name"], a["subject"]) for a in view["alerts"]}
    assert opened == {("pull-lag", "UT/orders"), ("unsynced", "UT"), ("outbox", "oms")}
    assert all(a["look"].startswith("wheelctl ") for a in view["alerts"])


def test_status_tables_show_times_in_the_display_zone_with_the_zone_named(sessions, settings):
    seed(sessions, settings)
    out = run(settings.model_copy(update={"health_inspect_timeout_s": 0.5}), "status").stdout
    assert "IST" in out and "OLDEST, 2h 0m" in out and "HTTP 503 from Tata CLiQ" in out
    assert "no consumer" in out and "Open health alerts: 3" in out
    out = run(settings.model_copy(update={"health_inspect_timeout_s": 0.5, "display_tz": "UTC"}), "status").stdout
    assert "IST" not in out and " UTC" in out
