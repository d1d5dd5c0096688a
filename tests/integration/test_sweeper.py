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


def test_while_the_oms_queue_holds_tasks_no_message_is_sent_again(sessions):
    """A backlog is not a loss: while tasks wait on the oms queue, their messages are on their way.
    (Re-sending every message waiting past the deadline on each sweep flooded Redis with 260,000
    tasks for 10,000 messages in the chaos run, and made the drain take 20 minutes.)"""
    with sessions.begin() as session:
        [stored] = store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE, "m1")])
        session.execute(text("UPDATE inbox SET enqueued_at = now() - interval '2 minutes'"))
    sent = []
    report = sweep(sessions, deadline_s=60, send_process=sent.append, send_sync=lambda *a: None,
                   oms_backlog=lambda: 250)
    assert (report.inbox, sent) == (0, [])
    report = sweep(sessions, deadline_s=60, send_process=sent.append, send_sync=lambda *a: None,
                   oms_backlog=lambda: 0)  # the queue is empty and the message still waits: its task was lost
    assert (report.inbox, sent) == (1, [stored.inbox_id])


def test_when_the_backlog_cannot_be_read_lost_tasks_are_sent_again_all_the_same(sessions):
    with sessions.begin() as session:
        [stored] = store_batch(session, [IncomingMessage("Q.RANGING", SAMPLE, "m1")])
        session.execute(text("UPDATE inbox SET enqueued_at = now() - interval '2 minutes'"))

    def redis_down() -> int:
        raise ConnectionError("Redis is down")

    sent = []
    sweep(sessions, deadline_s=60, send_process=sent.append, send_sync=lambda *a: None, oms_backlog=redis_down)
    assert sent == [stored.inbox_id]


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
