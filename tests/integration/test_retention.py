"""The retention purge (wheel/services/retention.py) on rows made by the real pipeline, aged by
moving their timestamps back: what is past its period goes, a batch a transaction; what is still
needed stays; the reports keep their counts; and a pull that sees a scrubbed order again sends
nothing twice."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.support import services
from tests.support.pipeline import Puller, backdate, inventory, oms, order_channel, ranging, sandbox_post, sync
from wheel.services import retention
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.replay import replay
from workers import queues
from workers.bootstrap import celery_app

PERIODS = retention.Periods(events_days=30, inbox_days=30, orders_days=30)


def scalar(sessions, query: str, **params):
    with sessions() as session:
        return session.execute(text(query), params).scalar_one()


def column(sessions, query: str, **params) -> list:
    with sessions() as session:
        return list(session.execute(text(query), params).scalars())


def age_everything(sessions, days: int = 40) -> None:
    backdate(sessions, "UPDATE events SET created_at = created_at - make_interval(days => :d)", d=days)
    backdate(sessions, "UPDATE inbox SET received_at = received_at - make_interval(days => :d)", d=days)
    backdate(sessions, "UPDATE orders SET received_at = received_at - make_interval(days => :d)", d=days)
    backdate(sessions, "UPDATE outbox SET created_at = created_at - make_interval(days => :d), "
                       "sent_at = sent_at - make_interval(days => :d)", d=days)
    backdate(sessions, "UPDATE cancellations SET received_at = received_at - make_interval(days => :d)", d=days)


@pytest.fixture
def puller(sessions, adapters, settings):
    puller = Puller(sessions, adapters, settings)
    yield puller
    puller.close()


def test_old_messages_and_events_go_in_batches_and_what_is_still_needed_stays(sessions, make_channel, adapters):
    make_channel("UA")
    done = oms(sessions, "Q.RANGING", ranging(("UA", "S1"), ("UA", "S2")))
    sync(sessions, adapters, "UA")  # ranging/succeeded under the message's oms event
    waiting = oms(sessions, "Q.INVENTORY", inventory(("UA", "S1", 4)))  # its value is not pushed yet
    bad = oms(sessions, "Q.RANGING", b"<never-fixed")  # failed, never replayed: kept for the operator
    fixed = oms(sessions, "Q.RANGING", b"<fixed-later")  # failed, then replayed with a corrected body
    with sessions.begin() as session:  # stored by the bridge, not yet processed
        [pending] = store_batch(session, [IncomingMessage("Q.RANGING", ranging(("UA", "S9")), "pending-1")])
    replay_id = replay(sessions, fixed.inbox_id, ranging(("UA", "S3")))
    age_everything(sessions)
    # One event still young, under an old parent: the parent stays (the foreign key parent_id).
    with sessions.begin() as session:
        session.execute(text("UPDATE events SET created_at = now() WHERE name = 'ranging/succeeded'"))
    events_before = scalar(sessions, "SELECT count(*) FROM events")
    # Kept: the young child and its parent; the oms events of the messages kept.
    kept = [("oms/items-ranged", done.inbox_id), ("ranging/succeeded", done.inbox_id),
            ("oms/inventory-updated", waiting.inbox_id), ("oms/items-ranged", bad.inbox_id)]

    report = retention.purge(sessions, PERIODS, batch_size=2)

    remaining = set(column(sessions, "SELECT id FROM inbox"))
    assert done.inbox_id not in remaining and fixed.inbox_id not in remaining
    assert {waiting.inbox_id, bad.inbox_id, pending.inbox_id, replay_id} <= remaining
    assert report.inbox == 2
    with sessions() as session:
        assert [tuple(r) for r in session.execute(text("SELECT name, inbox_id FROM events ORDER BY id"))] == kept
    assert scalar(sessions, "SELECT parent_id FROM events WHERE name = 'ranging/succeeded'") == done.oms_event_id
    assert report.events == events_before - len(kept)
    # Two rows a transaction: the batches add up, and a second run finds nothing.
    assert report.batches >= (report.events + report.inbox) / 2
    assert retention.purge(sessions, PERIODS, batch_size=2).batches == 0
    # Once the young event ages too, both go: the child first, then its parent.
    backdate(sessions, "UPDATE events SET created_at = now() - interval '40 days'")
    assert retention.purge(sessions, PERIODS, batch_size=2).events == 2


def test_nothing_within_its_period_is_touched(sessions, make_channel, adapters):
    make_channel("UA")
    oms(sessions, "Q.RANGING", ranging(("UA", "S1")))
    sync(sessions, adapters, "UA")
    counts = scalar(sessions, "SELECT (SELECT count(*) FROM events) * 1000 + (SELECT count(*) FROM inbox)")
    age_everything(sessions, days=29)
    report = retention.purge(sessions, PERIODS, batch_size=10)
    assert (report.events, report.inbox, report.batches) == (0, 0, 0)
    assert scalar(sessions, "SELECT (SELECT count(*) FROM events) * 1000 + (SELECT count(*) FROM inbox)") == counts


def test_sent_orders_lose_their_customer_and_keep_their_row_and_the_reports_their_counts(
        sessions, sandbox, secrets, puller):
    order_channel(sessions, sandbox, secrets, "UT")
    sent = sandbox_post(sandbox, "orders", {"channel": "UT", "count": 3, "lines_per_order": 2})["created"]
    puller.pull("UT")
    assert puller.publish() == 3
    unsent = sandbox_post(sandbox, "orders", {"channel": "UT", "count": 2})["created"]
    no_zip = {"first_name": "A", "last_name": "B", "line1": "1 Road", "line2": "", "city": "Pune", "state": "MH",
              "zip_code": ""}
    sandbox_post(sandbox, "orders", {"channel": "UT", "orders": [
        {"order_id": "BAD-1", "lines": [{"sku": "SKU1", "price": "10.0"}], "ship_to": no_zip}]})
    puller.pull("UT")  # stored, in the outbox, not yet sent; BAD-1 failed (no PIN code), waiting for a fix
    assert column(sessions, "SELECT status FROM orders WHERE order_id = 'BAD-1'") == ["failed"]
    # An order cancelled before Wheel pulled it: its cancellation is held, waiting for it.
    sandbox_post(sandbox, "orders", {"channel": "UT", "orders": [
        {"order_id": "LATE-1", "lines": [{"sku": "SKU1", "price": "10.0"}]}]})
    sandbox_post(sandbox, "cancellations", {"channel": "UT", "cancellations": [{"order_id": "LATE-1"}]})
    puller.pull("UT", "cancellations")
    assert column(sessions, "SELECT status FROM cancellations") == ["held"]
    counts = "SELECT orders, orders_sent, orders_waiting, order_lines, order_value, cancelled_lines FROM reports.orders_per_day"
    with sessions() as session:
        report_before = session.execute(text(counts)).all()
    age_everything(sessions)
    sent_ids = [o["order_id"] for o in sent]

    report = retention.purge(sessions, PERIODS, batch_size=2)

    assert report.orders_scrubbed == 3 and report.outbox == 3
    with sessions() as session:
        rows = {r.order_id: r for r in session.execute(text("SELECT * FROM orders"))}
    for order_id in sent_ids:
        row = rows[order_id]
        assert row.raw is None and row.scrubbed_at is not None and row.status == "sent"
        assert "ship_to" not in row.document and "bill_to" not in row.document
        assert len(row.document["lines"]) == 2 and row.lines == 2
    assert all(rows[order_id].event_id is None for order_id in sent_ids)  # their order/received events are gone
    for order in unsent:
        row = rows[order["order_id"]]
        assert row.status == "ready" and row.raw is not None and "ship_to" in row.document and row.scrubbed_at is None
        assert row.event_id is not None
    bad = rows["BAD-1"]
    assert bad.status == "failed" and bad.raw is not None and bad.scrubbed_at is None and bad.event_id is not None
    # Unsent outbox rows (the two orders) stay; the sent ones, addresses and all, are gone.
    assert column(sessions, "SELECT order_id FROM outbox ORDER BY id") == [o["order_id"] for o in unsent]
    assert column(sessions, "SELECT status FROM cancellations") == ["held"]
    assert column(sessions, "SELECT name FROM events WHERE name = 'cancellation/held'") == ["cancellation/held"]
    assert len(column(sessions, "SELECT id FROM events WHERE name = 'order/received'")) == 2  # the unsent ones'
    # The reports count exactly what they counted before (their day moved back with the ages).
    with sessions() as session:
        assert session.execute(text(counts)).all() == report_before
    assert [tuple(r) for r in report_before] == [(6, 3, 2, 8, report_before[0].order_value, 1)]

    # Tata CLiQ answers every open order again: the scrubbed ones are known, nothing is sent twice.
    # (LATE-1, cancelled whole before it was pulled, is not open.)
    assert puller.pull("UT").orders == 0
    assert scalar(sessions, "SELECT count(*) FROM orders") == 6
    assert scalar(sessions, "SELECT count(*) FROM outbox WHERE order_id = ANY(:ids)", ids=sent_ids) == 0
    # And a scrubbed order's lines are still what a cancellation is checked against.
    sandbox_post(sandbox, "cancellations", {"channel": "UT", "cancellations": [
        {"order_id": sent[0]["order_id"], "line_ids": [sent[0]["lines"][1]["line_id"]]}]})
    assert puller.pull("UT", "cancellations").cancellations == 1
    assert scalar(sessions, "SELECT status FROM cancellations WHERE order_id = :o", o=sent[0]["order_id"]) == "ready"


def test_beat_runs_the_purge_on_its_own_interval(settings):
    app = celery_app(services.test_settings(retention_interval_s=1234))
    entry = app.conf.beat_schedule["purge"]
    assert entry["task"] == queues.PURGE and entry["schedule"] == 1234
    assert queues.TASK_ROUTES[queues.PURGE] == {"queue": queues.OMS_QUEUE}
