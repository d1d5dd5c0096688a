"""What a task that cannot finish leaves behind (workers/guard.py calls these): the work set aside
where it is a row, and an error event to alert on, on the real Postgres."""

from __future__ import annotations

from sqlalchemy import text

from wheel.db.models import Channel
from wheel.services import failures, pulls, schedules
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import fail_message, still_received
from wheel.services.sweeper import sweep

SAMPLE = b'<EXTNChannelList><EXTNChannelItemList><EXTNChannelItem ChannelID="UA" EAN="E" ItemID="S" RangeFlag="Y"/></EXTNChannelItemList></EXTNChannelList>'


def names(sessions) -> list[str]:
    with sessions() as session:
        return list(session.execute(text("SELECT name FROM events ORDER BY id")).scalars())


def test_a_message_set_aside_is_failed_said_and_no_longer_re_driven(sessions):
    with sessions.begin() as session:
        [stored] = store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE, "m1")])
        session.execute(text("UPDATE inbox SET enqueued_at = now() - interval '1 hour'"))
    error = failures.abandoned_error(3)
    [recorded] = fail_message(sessions, stored.inbox_id, error, operation_for_queue={"Q.RANGING": "ranging"}.get)
    assert recorded.created and recorded.event.name == "system/processing-failed" and recorded.event.level == "error"
    assert f"wheelctl inbox replay {stored.inbox_id}" in recorded.event.payload["fix"]
    with sessions() as session:
        status, last_error, attempts = session.execute(text("SELECT status, last_error, attempts FROM inbox")).one()
    assert (status, last_error, attempts) == ("failed", error, 1)
    assert names(sessions) == ["oms/items-ranged", "system/processing-failed"]
    assert fail_message(sessions, stored.inbox_id, error, operation_for_queue={}.get) == []  # once
    sent = []
    sweep(sessions, deadline_s=60, send_process=sent.append, send_sync=lambda c, m: None)
    assert sent == []  # the sweeper leaves it to the operator


def test_a_run_set_aside_is_failed_said_and_the_next_run_pulls_the_window_again(sessions, make_channel):
    make_channel("UT")
    with sessions.begin() as session:
        schedules.ensure_schedules(session, session.get(Channel, "UT"))
        due = schedules.run_now(session, "UT", "orders")
        session.execute(text("UPDATE job_runs SET status = 'running'"))
        session.execute(text("""UPDATE schedules SET cursor = '{"start": "x", "end": "y", "page": "p"}'"""))
    outcome = pulls.fail_run(sessions, due.run_id, "DataError: (psycopg.errors.NumericValueOutOfRange) integer out of range")
    [alert] = outcome.alerts
    assert (outcome.status, alert.event.name, alert.event.level) == ("failed", "system.cron/failed", "error")
    assert "integer out of range" in alert.event.payload["error"]
    with sessions() as session:
        assert session.execute(text("SELECT status FROM job_runs")).scalar_one() == "failed"
        assert session.execute(text("SELECT cursor FROM schedules WHERE job = 'orders'")).scalar_one() is None
    assert pulls.fail_run(sessions, due.run_id, "again").status == "skipped"


def test_a_failing_task_is_said_once_an_hour_and_an_abandoned_one_once(sessions, make_channel):
    make_channel("UA")
    first = failures.record_task_failure(sessions, task="wheel.marketplace.sync", args=["UA"], error="KeyError: 'x'",
                                         task_id="t1", abandoned=False, channel_id="UA")
    again = failures.record_task_failure(sessions, task="wheel.marketplace.sync", args=["UA"], error="KeyError: 'x'",
                                         task_id="t2", abandoned=False, channel_id="UA")
    assert first.created and not again.created and again.id == first.id
    assert (first.event.channel_id, first.event.marketplace) == ("UA", "tatacliq")
    gone = failures.record_task_failure(sessions, task="wheel.marketplace.sync", args=["UA"], task_id="t3",
                                        error=failures.abandoned_error(3), abandoned=True, channel_id="UA")
    assert gone.created and gone.event.name == "system/task-abandoned"
    assert names(sessions) == ["system/task-failed", "system/task-abandoned"]


def test_the_messages_of_a_chunk_still_waiting_are_found_in_the_chunk_s_order(sessions):
    with sessions.begin() as session:
        stored = store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE + str(n).encode(), f"m{n}") for n in range(4)])
    ids = [s.inbox_id for s in stored]
    fail_message(sessions, ids[1], "an error", operation_for_queue={"Q.RANGING": "ranging"}.get)
    assert still_received(sessions, [ids[3], ids[2], ids[1], ids[0], 999]) == [ids[3], ids[2], ids[0]]
    assert still_received(sessions, []) == []
