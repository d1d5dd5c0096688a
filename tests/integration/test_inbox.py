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


def acked(sessions, *stored):
    """What the bridge does just before it acknowledges a batch to the broker."""
    from wheel.services.inbox import mark_acked

    with sessions.begin() as session:
        mark_acked(session, [s.inbox_id for s in stored])


def test_messages_without_ids_repeating_a_body_are_new_unless_redelivered(sessions):
    body = b"<price>100</price>"
    [one] = store(sessions, IncomingMessage("Q", body, None))
    [two] = store(sessions, IncomingMessage("Q", body, None))  # the price set back: a new message
    assert one.created and two.created and one.key != two.key
    acked(sessions, one)  # two was stored, then the connection was lost before its acknowledgement
    [redelivery] = store(sessions, IncomingMessage("Q", body, None, redelivered=True))
    assert not redelivery.created and redelivery.inbox_id == two.inbox_id  # the one never acknowledged
    [other_queue] = store(sessions, IncomingMessage("OTHER", body, None, redelivered=True))
    assert other_queue.created


def test_a_redelivered_message_without_id_is_new_when_every_earlier_one_was_acknowledged(sessions):
    # Stock 5 (stored, acknowledged), then 7, then 5 again: the second 5 was prefetched when the
    # connection dropped, so it comes back flagged as redelivered though it was never stored.
    five = b"<stock sku='X'>5</stock>"
    [first] = store(sessions, IncomingMessage("Q", five, None))
    acked(sessions, first)
    [seven] = store(sessions, IncomingMessage("Q", b"<stock sku='X'>7</stock>", None))
    acked(sessions, seven)
    [again] = store(sessions, IncomingMessage("Q", five, None, redelivered=True))
    assert again.created and again.pending and again.inbox_id > seven.inbox_id


def test_each_unacknowledged_row_is_matched_once_per_batch(sessions):
    body = b"<price>100</price>"
    [stored] = store(sessions, IncomingMessage("Q", body, None))  # stored, never acknowledged
    # Both come back: the one stored, and another with the same body that was only prefetched.
    first, second = store(sessions, IncomingMessage("Q", body, None, redelivered=True),
                          IncomingMessage("Q", body, None, redelivered=True))
    assert (first.inbox_id, first.created) == (stored.inbox_id, False)
    assert second.created


def test_a_fallback_key_makes_storing_one_delivery_again_a_no_op(sessions):
    from wheel.services.inbox import new_key

    body = b"<price>100</price>"
    message = IncomingMessage("Q", body, None, fallback_key=new_key(body))
    [one] = store(sessions, message)
    [again] = store(sessions, message)  # the bridge retries a batch after Redis failed
    assert one.created and not again.created and again.inbox_id == one.inbox_id


def test_one_message_id_on_two_queues_is_two_messages(sessions):
    # An OMS that uses its own document numbers as message ids may use one on two queues.
    [ranging] = store(sessions, IncomingMessage("OMS.RANGING", b"<ranging/>", "DOC-1"))
    [inventory] = store(sessions, IncomingMessage("OMS.INVENTORY", b"<inventory/>", "DOC-1"))
    assert ranging.created and inventory.created and ranging.inbox_id != inventory.inbox_id
    [again] = store(sessions, IncomingMessage("OMS.INVENTORY", b"<inventory/>", "DOC-1", redelivered=True))
    assert not again.created and again.inbox_id == inventory.inbox_id


def test_the_raw_body_and_headers_are_kept(sessions):
    body = bytes(range(256)) * 10
    [stored] = store(sessions, IncomingMessage("Q", body, "id", headers={"x": "a\x00b", "n": 1, "b": b"raw"}))
    with sessions() as session:
        row = session.get(InboxMessage, stored.inbox_id)
        assert row.body == body and row.size == len(body) and row.status == "received"
        assert row.headers["x"] == "a\ufffdb" and row.headers["n"] == 1 and row.headers["b"] == "b'raw'"
