"""The sweeper re-sends tasks for work left pending past its deadline (contract 5)."""

from __future__ import annotations

from sqlalchemy import text

from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.services.sweeper import sweep

SAMPLE = b'<EXTNChannelList><EXTNChannelItemList><EXTNChannelItem ChannelID="UA" EAN="E" ItemID="S" RangeFlag="Y"/></EXTNChannelItemList></EXTNChannelList>'


def run(sessions, deadline_s=60):
    sent = {"process": [], "sync": []}
    report = sweep(sessions, deadline_s=deadline_s, send_process=sent["process"].append,
                   send_sync=lambda channel, marketplace: sent["sync"].append((channel, marketplace)))
    return report, sent


def test_fresh_work_is_left_alone(sessions):
    with sessions.begin() as session:
        store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE, "m1")])
    report, _ = run(sessions)
    assert (report.inbox, report.channels) == (0, 0)


def test_a_message_whose_task_was_lost_is_sent_again_once_per_deadline(sessions):
    with sessions.begin() as session:
        [stored] = store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE, "m1")])
        session.execute(text("UPDATE inbox SET enqueued_at = now() - interval '2 minutes'"))
    _, sent = run(sessions)
    assert sent["process"] == [stored.inbox_id]
    _, again = run(sessions)
    assert again["process"] == []  # just re-sent: wait another deadline


def test_a_channel_with_listings_nobody_pushed_is_synced_again(sessions, make_channel):
    make_channel("UA")
    with sessions.begin() as session:
        [stored] = store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE, "m1")])
    process_message(sessions, stored.inbox_id, operation_for_queue={"Q.RANGING": "ranging"}.get, max_message_bytes=10_000)
    assert run(sessions)[1]["sync"] == []  # fresh
    with sessions.begin() as session:
        session.execute(text("UPDATE listings SET dirty_since = now() - interval '2 minutes', "
                             "next_attempt_at = now() - interval '2 minutes'"))
    assert run(sessions)[1]["sync"] == [("UA", "tatacliq")]
    # Held by a live worker: left alone. Its lease ran out: synced again.
    with sessions.begin() as session:
        session.execute(text("UPDATE listings SET claimed_by = 'w:1', lease_until = now() + interval '1 minute'"))
    assert run(sessions)[1]["sync"] == []
    with sessions.begin() as session:
        session.execute(text("UPDATE listings SET lease_until = now() - interval '1 second'"))
    assert run(sessions)[1]["sync"] == [("UA", "tatacliq")]
