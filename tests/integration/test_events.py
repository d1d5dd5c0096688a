"""Writing events: one at a time or many in one statement, idempotent by dedupe key."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from wheel.events import NewEvent, record, record_many


def event(key: str, **payload) -> NewEvent:
    return NewEvent(type="domain", name="order/received", channel_id="UT", payload=payload, dedupe_key=key)


def test_many_at_once_and_again_writes_each_once(sessions):
    with sessions.begin() as session:
        first = record(session, event("k2", n=2))
    with sessions.begin() as session:
        recorded = record_many(session, [event("k1", n=1), event("k2", n=2), event("k3", text="a\x00b")])
    assert [r.created for r in recorded] == [True, False, True]
    assert recorded[1].id == first.id
    with sessions.begin() as session:
        again = record_many(session, [event("k3"), event("k1")])
    assert [r.created for r in again] == [False, False]
    assert [r.id for r in again] == [recorded[2].id, recorded[0].id]
    with sessions() as session:
        rows = session.execute(text("SELECT dedupe_key, payload FROM events ORDER BY id")).all()
    assert [r.dedupe_key for r in rows] == ["k2", "k1", "k3"]
    assert rows[2].payload == {"text": "a\ufffdb"}  # jsonb refuses NUL: cleaned, not lost


def test_many_needs_a_key_on_every_event(sessions):
    with sessions.begin() as session, pytest.raises(ValueError, match="dedupe key"):
        record_many(session, [NewEvent(type="domain", name="x")])
