"""Schedules in Postgres: due runs fire once, edits apply on the next tick, missed runs are caught up."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from wheel.db.models import Channel, JobRun, Schedule
from wheel.services import schedules
from wheel.services.channels import add_channel

T0 = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def channel(sessions):
    with sessions.begin() as session:
        add_channel(session, channel_id="UT", marketplace="tatacliq", base_url="http://x", credentials_ref="r",
                    known_marketplaces=("tatacliq",))
        session.flush()
        schedules.ensure_schedules(session, session.get(Channel, "UT"), jobs={"orders": "* * * * * */10"}, now=T0)
    return "UT"


def fire(sessions, now):
    with sessions.begin() as session:
        return schedules.fire_due(session, now)


def test_a_due_schedule_fires_once_and_moves_on(sessions, channel):
    assert fire(sessions, T0 + timedelta(seconds=5)) == []
    [run] = fire(sessions, T0 + timedelta(seconds=10))
    assert (run.channel_id, run.job, run.due_at, run.trigger) == ("UT", "orders", T0 + timedelta(seconds=10), "cron")
    assert fire(sessions, T0 + timedelta(seconds=11)) == []  # a second beat at the same moment: nothing
    with sessions() as session:
        assert session.execute(select(Schedule.next_run_at)).scalar_one() == T0 + timedelta(seconds=20)


def test_two_beats_never_fire_the_same_run(sessions, channel):
    # Both see the schedule due; the first locks it, the second skips it, and the unique
    # (schedule, due time) stops a late duplicate.
    with sessions.begin() as first:
        fired = schedules.fire_due(first, T0 + timedelta(seconds=10))
        with sessions.begin() as second:
            assert schedules.fire_due(second, T0 + timedelta(seconds=10)) == []
    assert len(fired) == 1
    with sessions.begin() as session:
        session.execute(text("UPDATE schedules SET next_run_at = :t"), {"t": T0 + timedelta(seconds=10)})
    assert fire(sessions, T0 + timedelta(seconds=12)) == []
    with sessions() as session:
        assert session.execute(select(JobRun.due_at)).scalars().all() == [T0 + timedelta(seconds=10)]


def test_a_beat_back_after_a_gap_fires_the_runs_it_missed(sessions, channel):
    fired = fire(sessions, T0 + timedelta(seconds=35))
    assert [r.due_at for r in fired] == [T0 + timedelta(seconds=s) for s in (10, 20, 30)]
    assert [r.trigger for r in fired] == ["catch-up", "catch-up", "cron"]


def test_a_long_gap_fires_the_latest_runs_and_says_how_many_it_folded(sessions, channel):
    fired = fire(sessions, T0 + timedelta(seconds=125))
    assert [r.due_at for r in fired] == [T0 + timedelta(seconds=s) for s in (80, 90, 100, 110, 120)]
    with sessions() as session:
        payload = session.execute(text("SELECT payload FROM events WHERE name = 'system.cron/missed'")).scalar_one()
    assert payload["missed"] == 7


def test_edits_apply_without_a_restart(sessions, channel):
    with sessions.begin() as session:
        schedules.set_cron(session, "UT", "orders", "*/5 * * * *", now=T0)
    assert fire(sessions, T0 + timedelta(seconds=30)) == []
    assert len(fire(sessions, T0 + timedelta(minutes=5))) == 1
    with sessions.begin() as session:
        schedules.set_enabled(session, "UT", "orders", False)
    assert fire(sessions, T0 + timedelta(hours=1)) == []


def test_bad_cron_and_unknown_jobs_say_what_is_wrong(sessions, channel):
    with sessions.begin() as session:
        with pytest.raises(schedules.ScheduleError, match="not a cron expression"):
            schedules.set_cron(session, "UT", "orders", "every minute")
        with pytest.raises(schedules.ScheduleError, match="has no cancellations job"):
            schedules.set_cron(session, "UT", "cancellations", "* * * * *")
        with pytest.raises(schedules.ScheduleError, match="no channel UX"):
            schedules.run_now(session, "UX", "orders")


def test_a_run_whose_task_was_lost_is_sent_again(sessions, channel):
    [run] = fire(sessions, T0 + timedelta(seconds=10))
    with sessions.begin() as session:
        assert schedules.stale_runs(session, deadline_s=60) == []
        session.execute(text("UPDATE job_runs SET enqueued_at = now() - interval '2 minutes'"))
    with sessions.begin() as session:
        assert [r.run_id for r in schedules.stale_runs(session, deadline_s=60)] == [run.run_id]


def test_a_cron_in_india_fires_at_its_wall_clock_time_stored_as_utc(sessions, channel):
    with sessions.begin() as session:
        schedule = schedules.set_cron(session, "UT", "orders", "0 9 * * *", now=T0, tz_name="Asia/Kolkata")
        assert schedule.timezone == "Asia/Kolkata"
    # T0 is 10:00 UTC = 15:30 IST on 27 November: the next 09:00 IST is 03:30 UTC on the 28th.
    due = datetime(2026, 11, 28, 3, 30, tzinfo=timezone.utc)
    assert fire(sessions, due - timedelta(seconds=1)) == []
    [run] = fire(sessions, due)
    assert run.due_at == due
    with sessions() as session:
        assert session.execute(select(Schedule.next_run_at)).scalar_one() == due + timedelta(days=1)


def test_a_zone_with_daylight_saving_keeps_the_local_hour_across_the_change(sessions, channel):
    # New York moves from UTC-5 to UTC-4 on 8 March 2026 (02:00 local): 09:00 local is 14:00 UTC
    # before and 13:00 UTC after.
    start = datetime(2026, 3, 6, 0, 0, tzinfo=timezone.utc)
    with sessions.begin() as session:
        schedules.set_cron(session, "UT", "orders", "0 9 * * *", now=start, tz_name="America/New_York")
    fired = []
    for day in range(6, 11):
        fired += fire(sessions, datetime(2026, 3, day, 23, 0, tzinfo=timezone.utc))
    assert [r.due_at for r in fired] == [
        datetime(2026, 3, 6, 14, tzinfo=timezone.utc), datetime(2026, 3, 7, 14, tzinfo=timezone.utc),
        datetime(2026, 3, 8, 13, tzinfo=timezone.utc), datetime(2026, 3, 9, 13, tzinfo=timezone.utc),
        datetime(2026, 3, 10, 13, tzinfo=timezone.utc),
    ]


def test_a_schedule_keeps_its_zone_unless_told_and_an_unknown_zone_is_refused(sessions, channel):
    with sessions.begin() as session:
        schedules.set_cron(session, "UT", "orders", "0 9 * * *", now=T0, tz_name="Asia/Kolkata")
        assert schedules.set_cron(session, "UT", "orders", "30 9 * * *", now=T0).timezone == "Asia/Kolkata"
        with pytest.raises(schedules.ScheduleError, match="unknown time zone 'Mars/Olympus'"):
            schedules.set_cron(session, "UT", "orders", "0 9 * * *", tz_name="Mars/Olympus")
    with sessions.begin() as session:
        # Re-enabled, it moves on in its own zone too: 09:30 IST is 04:00 UTC.
        schedules.set_enabled(session, "UT", "orders", False)
        schedule = schedules.set_enabled(session, "UT", "orders", True, now=T0)
        assert schedule.next_run_at == datetime(2026, 11, 28, 4, 0, tzinfo=timezone.utc)


def test_a_schedule_written_without_a_zone_is_read_in_utc(sessions, channel):
    # The column's default, which the migration gives the schedules made before zones: UTC, what
    # they meant then.
    with sessions.begin() as session:
        session.execute(text("INSERT INTO schedules (channel_id, job, cron) VALUES ('UT', 'cancellations', '0 9 * * *')"))
    with sessions() as session:
        assert session.execute(select(Schedule.timezone).where(Schedule.job == "cancellations")).scalar_one() == "UTC"
