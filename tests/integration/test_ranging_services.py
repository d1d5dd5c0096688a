"""Processing a stored message and pushing its items, on the real Postgres and sandbox server."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select, text

from wheel.db.models import Event, InboxMessage, Push
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.services.pushes import run_push

SAMPLE = (Path(__file__).resolve().parents[1] / "samples" / "ranging.xml").read_bytes()
OPS = {"Q.RANGING": "ranging"}


def stored(sessions, body: bytes = SAMPLE, queue: str = "Q.RANGING") -> int:
    with sessions.begin() as session:
        return store_batch(session, [IncomingMessage(queue, body, None)])[0].inbox_id


def process(sessions, inbox_id):
    return process_message(sessions, inbox_id, operation_for_queue=OPS.get, max_message_bytes=1_000_000)


def events(sessions, name=None):
    with sessions() as session:
        query = select(Event).order_by(Event.id)
        if name:
            query = query.where(Event.name == name)
        return list(session.execute(query).scalars())


def push(sessions, adapters, push_id, worker="w:1", delays=(0.01, 0.01)):
    return run_push(sessions, push_id, adapters=adapters, worker=worker, lease_s=30, default_retry_delays_s=list(delays))


def test_processing_logs_the_message_and_creates_one_push_per_channel(sessions, make_channel):
    make_channel("UA")
    make_channel("UB")
    inbox_id = stored(sessions)
    result = process(sessions, inbox_id)
    [oms_event] = events(sessions, "oms/items-ranged")
    assert result.oms_event_id == oms_event.id and oms_event.inbox_id == inbox_id
    assert "EXTNChannelList" in oms_event.payload["body"]
    with sessions() as session:
        pushes = {p.channel_id: p.items for p in session.execute(select(Push)).scalars()}
        assert session.get(InboxMessage, inbox_id).status == "processed"
    assert pushes == {"UA": [{"sku": "SKU1", "ean": "EAN_1"}, {"sku": "SKU2", "ean": "EAN_2"}],
                      "UB": [{"sku": "SKU3", "ean": "EAN_3"}]}


def test_processing_twice_changes_nothing(sessions, make_channel):
    make_channel("UA")
    make_channel("UB")
    inbox_id = stored(sessions)
    first = process(sessions, inbox_id)
    second = process(sessions, inbox_id)
    assert len(first.pushes) == 2 and second.skipped and second.pushes == []
    assert len(events(sessions)) == 1


def test_a_disabled_channel_gets_an_event_and_no_push(sessions, make_channel):
    make_channel("UA")
    with sessions.begin() as session:
        session.execute(text("UPDATE channels SET enabled = false"))
    result = process(sessions, stored(sessions))
    assert result.pushes == []
    names = [(e.name, e.channel_id) for e in events(sessions)]
    assert ("system/channel-disabled", "UA") in names and ("system/channel-not-found", "UB") in names


def test_a_queue_carrying_no_known_operation_is_a_processing_failure(sessions):
    result = process(sessions, stored(sessions, queue="Q.SOMETHING"))
    [failure] = events(sessions, "system/processing-failed")
    assert failure.parent_id == result.oms_event_id and "Q.SOMETHING" in failure.payload["error"]


def test_a_push_reaches_the_sandbox_and_logs_success_once(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    result = process(sessions, stored(sessions, SAMPLE.replace(b'"UB"', b'"UA"').replace(b"SKU3", b"SKU3")))
    [(push_id, marketplace)] = result.pushes
    assert marketplace == "tatacliq"
    assert push(sessions, adapters, push_id).status == "succeeded"
    assert push(sessions, adapters, push_id).status == "skipped"  # a redelivered task does nothing
    [success] = events(sessions, "ranging/succeeded")
    assert success.parent_id == result.oms_event_id and len(success.payload["items"]) == 3
    assert len(sandbox.state.calls) == 1 and sandbox.state.calls[0].request_id == f"wheel-push-{push_id}-1"


def test_transient_failures_retry_then_fail_loudly(sessions, make_channel, sandbox, adapters):
    make_channel("UB", fail_status=503)
    result = process(sessions, stored(sessions))
    [(push_id, _)] = result.pushes
    outcomes = []
    for _ in range(3):
        with sessions.begin() as session:  # the retry is due now
            session.execute(text("UPDATE pushes SET next_attempt_at = now()"))
        outcomes.append(push(sessions, adapters, push_id))
    assert [o.status for o in outcomes] == ["retry", "retry", "failed"]
    assert outcomes[-1].alerts and outcomes[-1].alerts[0].created
    [failure] = events(sessions, "system/processing-failed")
    assert "HTTP 503" in failure.payload["error"] and "after 3 attempts" in failure.payload["error"]
    assert failure.payload["kind"] == "transient"
    assert len(events(sessions, "ranging/retrying")) == 2


def test_a_business_rejection_fails_at_once_with_the_marketplace_code(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    with sessions.begin() as session:
        session.execute(text("UPDATE channels SET base_url = base_url || '/nowhere'"))
    [(push_id, _)] = process(sessions, stored(sessions, SAMPLE.replace(b'"UB"', b'"UA"'))).pushes
    assert push(sessions, adapters, push_id).status == "failed"
    [failure] = events(sessions, "ranging/failed")
    assert failure.payload["http_status"] == 404 and failure.payload["code"] == "NOT_FOUND"


def test_a_refused_token_is_an_auth_failure_and_the_token_is_not_logged(sessions, make_channel, adapters):
    make_channel("UA", token="secret-token-123", sandbox_token="another")
    [(push_id, _)] = process(sessions, stored(sessions, SAMPLE.replace(b'"UB"', b'"UA"'))).pushes
    assert push(sessions, adapters, push_id).status == "failed"
    [failure] = events(sessions, "system/processing-failed")
    assert failure.payload["kind"] == "auth" and "HTTP 401" in failure.payload["error"]
    with sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM events WHERE payload::text LIKE '%secret-token-123%'")) == 0


def test_two_workers_never_push_the_same_push_at_once(sessions, make_channel, sandbox, adapters):
    make_channel("UA", delay_s=0.3)
    [(push_id, _)] = process(sessions, stored(sessions, SAMPLE.replace(b'"UB"', b'"UA"'))).pushes
    results = []
    threads = [threading.Thread(target=lambda w=w: results.append(push(sessions, adapters, push_id, worker=f"w:{w}")))
               for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status for r in results) == ["skipped", "skipped", "skipped", "succeeded"]
    assert len(sandbox.state.calls) == 1


def test_an_expired_lease_lets_another_worker_finish_and_the_late_one_logs_nothing(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    [(push_id, _)] = process(sessions, stored(sessions, SAMPLE.replace(b'"UB"', b'"UA"'))).pushes
    # A worker claimed it and died mid-call; its lease has run out.
    with sessions.begin() as session:
        session.execute(text("UPDATE pushes SET status = 'in_progress', attempts = 1, claimed_by = 'dead:1', "
                             "lease_until = now() - interval '1 second' WHERE id = :id"), {"id": push_id})
    assert push(sessions, adapters, push_id, worker="w:2").status == "succeeded"
    with sessions() as session:
        assert session.get(Push, push_id).attempts == 2
    assert len(events(sessions, "ranging/succeeded")) == 1
