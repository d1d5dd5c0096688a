"""reports.operations_per_day from its daily roll-up (wheel/services/rollups.py, migration
d2e3f4a5b6c7): events made by the real pipeline (OMS messages, pushes to the sandbox), aged by
moving their timestamps back; the view gives what a direct aggregate of the events gives while days
are folded and more events arrive, and keeps the counts of the events retention purges."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from tests.support.pipeline import backdate, inventory, oms, pricing, ranging, sync
from wheel.services import retention, rollups

# What the view computed from the events before the roll-up (migration c1d2e3f4a5b6).
DIRECT = """
SELECT r.day, r.channel_id, r.marketplace,
       CASE WHEN r.name = 'system/processing-failed' THEN 'push' ELSE split_part(r.name, '/', 1) END AS operation,
       CASE WHEN r.name = 'system/processing-failed' THEN 'gave-up' ELSE split_part(r.name, '/', 2) END AS outcome,
       count(*) AS events, sum(r.items) AS items
  FROM (SELECT (e.created_at AT TIME ZONE 'Asia/Kolkata')::date AS day, e.channel_id, e.marketplace, e.name,
               CASE WHEN jsonb_typeof(e.payload->'items') = 'array' THEN jsonb_array_length(e.payload->'items') ELSE 0 END
                   AS items
          FROM events e
         WHERE e.channel_id IS NOT NULL
           AND (split_part(e.name, '/', 1) IN ('ranging', 'deranging', 'inventory', 'pricing')
                OR e.name = 'system/processing-failed')) r
 GROUP BY 1, 2, 3, 4, 5
"""
ORDER = " ORDER BY day, channel_id, operation, outcome"


def ist_today():
    return datetime.now(ZoneInfo("Asia/Kolkata")).date()


def rows(sessions, query: str) -> list[dict]:
    with sessions() as session:
        return [dict(row) for row in session.execute(text(query)).mappings()]


def view(sessions) -> list[dict]:
    return rows(sessions, "SELECT * FROM reports.operations_per_day" + ORDER)


def direct(sessions) -> list[dict]:
    return rows(sessions, "SELECT * FROM (" + DIRECT + ") d" + ORDER)


def folded_days(sessions) -> set:
    with sessions() as session:
        return set(session.execute(text("SELECT DISTINCT day FROM operations_daily")).scalars())


def age_new_events(sessions, days: int) -> None:
    """Move the events of the last hour `days` back (the older ones were moved before)."""
    backdate(sessions, "UPDATE events SET created_at = created_at - make_interval(days => :d) "
                       "WHERE created_at > now() - interval '1 hour'", d=days)


def test_the_view_answers_from_the_rollup_as_before_and_keeps_what_retention_purges(
        sessions, make_channel, adapters):
    today = ist_today()
    make_channel("UA")
    oms(sessions, "Q.RANGING", ranging(("UA", "S1"), ("UA", "S2"), ("UA", "S3")))
    sync(sessions, adapters, "UA")
    age_new_events(sessions, 10)
    oms(sessions, "Q.INVENTORY", inventory(("UA", "S1", 5), ("UA", "S2", 6)))
    sync(sessions, adapters, "UA")
    age_new_events(sessions, 5)
    oms(sessions, "Q.PRICING", pricing(("UA", "S3", "100.00", "90.00")))
    sync(sessions, adapters, "UA")
    everything = direct(sessions)
    assert {r["day"] for r in everything} == {today - timedelta(days=10), today - timedelta(days=5), today}
    assert view(sessions) == everything  # nothing folded yet: the live aggregate of every day

    # A day is folded only once it ended `margin_s` ago: 8 days back, only the oldest day is over.
    report = rollups.fold(sessions, margin_s=8 * 86400)
    assert report.through == today - timedelta(days=9) and folded_days(sessions) == {today - timedelta(days=10)}
    assert view(sessions) == everything
    # Then every day before today; today stays live.
    assert rollups.fold(sessions, margin_s=0).through == today - timedelta(days=1)
    assert folded_days(sessions) == {today - timedelta(days=10), today - timedelta(days=5)}
    assert view(sessions) == everything
    assert rollups.fold(sessions, margin_s=0).days == 0  # folded once

    # More events arrive, today: counted live, beside the folded days.
    oms(sessions, "Q.INVENTORY", inventory(("UA", "S1", 7), ("UA", "S3", 1)))
    sync(sessions, adapters, "UA")
    assert direct(sessions) != everything
    everything = direct(sessions)
    assert view(sessions) == everything

    # Retention purges the events of 10 days ago; the view keeps counting them.
    purged = retention.purge(sessions, retention.Periods(events_days=7, inbox_days=7, orders_days=7), batch_size=100)
    assert purged.events > 0
    after = direct(sessions)
    assert [r for r in after if r["day"] == today - timedelta(days=10)] == []
    assert view(sessions) == everything
    assert [r for r in view(sessions) if r["day"] != today - timedelta(days=10)] == after


def test_the_events_purge_takes_only_events_of_folded_days(sessions, make_channel, adapters):
    make_channel("UA")
    oms(sessions, "Q.RANGING", ranging(("UA", "S1")))
    sync(sessions, adapters, "UA")
    backdate(sessions, "UPDATE events SET created_at = created_at - interval '40 days'")
    counted = direct(sessions)

    def purge_events() -> int:
        with sessions.begin() as session:
            return session.execute(retention.PURGE_EVENTS, {"days": 30, "batch": 100}).one().purged

    assert purge_events() == 0  # nothing folded: the events stay, whatever their age
    assert rollups.fold(sessions).days > 0
    assert purge_events() > 0
    assert view(sessions) == counted
