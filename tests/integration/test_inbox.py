"""Storing OMS messages in the inbox (contract 1), on the real Postgres."""

from __future__ import annotations

from sqlalchemy import func, select

from wheel.db.models import InboxMessage
from wheel.services.inbox import IncomingMessage, store_batch


def store(sessions, *messages):
    with sessions.begin() as session:
        return store_batch(session, list(messages))


def test_a_redelivered_message_id_is_a_no_op(sessions):
    message = IncomingMessage("Q", b"<a/>", "id-1")
    [first] = store(sessions, message)
    [again] = store(sessions, IncomingMessage("Q", b"<a/>", "id-1", redelivered=True))
    assert first.created and not again.created
    assert again.inbox_id == first.inbox_id and again.pending
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(InboxMessage)) == 1


def test_a_stored_message_that_was_processed_is_not_pending(sessions):
    [first] = store(sessions, IncomingMessage("Q", b"<a/>", "id-1"))
    with sessions.begin() as session:
        session.get(InboxMessage, first.inbox_id).status = "processed"
    [again] = store(sessions, IncomingMessage("Q", b"<a/>", "id-1", redelivered=True))
    assert not again.pending


def test_a_batch_with_the_same_id_twice_stores_it_once(sessions):
    stored = store(sessions, IncomingMessage("Q", b"1", "a"), IncomingMessage("Q", b"1", "a"), IncomingMessage("Q", b"2", "b"))
    assert [s.key for s in stored] == ["a", "b"]


def test_messages_without_ids_repeating_a_body_are_new_unless_redelivered(sessions):
    body = b"<price>100</price>"
    [one] = store(sessions, IncomingMessage("Q", body, None))
    [two] = store(sessions, IncomingMessage("Q", body, None))  # the price set back: a new message
    [redelivery] = store(sessions, IncomingMessage("Q", body, None, redelivered=True))
    assert one.created and two.created and one.key != two.key
    assert not redelivery.created and redelivery.inbox_id == two.inbox_id  # matched to the latest
    [other_queue] = store(sessions, IncomingMessage("OTHER", body, None, redelivered=True))
    assert other_queue.created


def test_the_raw_body_and_headers_are_kept(sessions):
    body = bytes(range(256)) * 10
    [stored] = store(sessions, IncomingMessage("Q", body, "id", headers={"x": "a\x00b", "n": 1, "b": b"raw"}))
    with sessions() as session:
        row = session.get(InboxMessage, stored.inbox_id)
        assert row.body == body and row.size == len(body) and row.status == "received"
        assert row.headers["x"] == "a\ufffdb" and row.headers["n"] == 1 and row.headers["b"] == "b'raw'"
