"""The sweeper re-sends tasks for work left pending past its deadline (contract 5)."""

from __future__ import annotations

from sqlalchemy import text

from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.services.sweeper import sweep

SAMPLE = b'<EXTNChannelList><EXTNChannelItemList><EXTNChannelItem ChannelID="UA" EAN="E" ItemID="S" RangeFlag="Y"/></EXTNChannelItemList></EXTNChannelList>'


def run(sessions, deadline_s=60):
    sent = {"process": [], "push": []}
    report = sweep(sessions, deadline_s=deadline_s, send_process=sent["process"].append,
                   send_push=lambda push_id, marketplace: sent["push"].append((push_id, marketplace)))
    return report, sent


def age(sessions, table, seconds, where="true"):
    with sessions.begin() as session:
        session.execute(text(f"UPDATE {table} SET enqueued_at = now() - make_interval(secs => :s) WHERE {where}"), {"s": seconds})


def test_fresh_work_is_left_alone(sessions):
    with sessions.begin() as session:
        store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE, "m1")])
    report, sent = run(sessions)
    assert (report.inbox, report.pushes) == (0, 0)


def test_a_message_whose_task_was_lost_is_sent_again_once_per_deadline(sessions):
    with sessions.begin() as session:
        [stored] = store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE, "m1")])
    age(sessions, "inbox", 120)
    report, sent = run(sessions)
    assert sent["process"] == [stored.inbox_id]
    _, again = run(sessions)
    assert again["process"] == []  # just re-sent: wait another deadline


def test_pushes_pending_or_with_an_expired_lease_are_sent_again(sessions, make_channel):
    make_channel("UA")
    with sessions.begin() as session:
        [stored] = store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE, "m1")])
    [(push_id, _)] = process_message(sessions, stored.inbox_id, operation_for_queue={"Q.RANGING": "ranging"}.get,
                                     max_message_bytes=10_000).pushes
    with sessions.begin() as session:
        session.execute(text("UPDATE pushes SET next_attempt_at = now() - interval '2 minutes'"))
    age(sessions, "pushes", 120)
    _, sent = run(sessions)
    assert sent["push"] == [(push_id, "tatacliq")]

    # Claimed by a worker whose lease has not run out: not touched.
    with sessions.begin() as session:
        session.execute(text("UPDATE pushes SET status = 'in_progress', lease_until = now() + interval '1 minute'"))
    age(sessions, "pushes", 120)
    assert run(sessions)[1]["push"] == []
    # The worker died: its lease ran out.
    with sessions.begin() as session:
        session.execute(text("UPDATE pushes SET lease_until = now() - interval '1 second'"))
    assert run(sessions)[1]["push"] == [(push_id, "tatacliq")]

    with sessions.begin() as session:
        session.execute(text("UPDATE pushes SET status = 'succeeded'"))
    age(sessions, "pushes", 120)
    assert run(sessions)[1]["push"] == []
