"""Purging what Wheel no longer needs: the event log, the raw OMS messages and the customers' data
of orders, each after its own period (WHEEL_RETENTION_*_DAYS), run by beat (workers/app.py).

Each purge goes a batch at a time, each batch its own short transaction, oldest first (the inbox:
oldest first per status, see PURGE_INBOX), so it never
holds many locks or a long transaction beside the pulls and pushes; rows a worker holds are skipped
(`SKIP LOCKED`) and taken by the next run.

What is kept, whatever its age, because something still needs it:
- events: an event of a day not yet folded into reports.operations_per_day's roll-up
  (wheel/services/rollups.py: the purge folds first, so that is only today and yesterday); an
  event another event hangs under (the foreign key `parent_id`: children go first, and their
  parent goes in a later batch), the `oms` event of a message still in the inbox, the
  event of an order not sent to the OMS or of an outbox row not yet sent, and the
  `cancellation/held` event of a cancellation still held or expired (its expiry and its release
  hang under it). A sent order whose event goes is unlinked from it (see PURGE_EVENTS);
- inbox: a message not yet processed (`received`); a `failed` message never replayed
  (docs/contracts.md, contract 6: kept for the operator to fix and replay; once a later replay of
  it exists, it goes); a message whose values a listing still waits to push (its id is the
  version, contract 2);
- orders: nothing is deleted. An order sent to the OMS loses its customer (the marketplace's raw
  order, and the bill-to and ship-to addresses in its document) and keeps its row: the row is the
  key that makes a pull that sees the order again store and send nothing (contract 4; a Tata CLiQ
  pull answers every open order, however old), its lines are what a later cancellation is checked
  against, and the reports count it (reports.orders_per_day). An order not sent (`ready`, or
  `failed` and waiting for a fix) is left whole. The sent outbox rows of those orders and their
  cancellations (their bodies are the OMS documents, addresses included) are deleted; unsent ones
  are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from wheel.services import rollups

# Newest first within the period (the index on created_at, read backwards from the cut-off), so
# an event's children (never older) go before it. Events are the parents of events still to come: an order's (orders.event_id: a later cancellation or
# failure hangs under it) and a message's `oms` event (inbox.event_id: its pushes hang under it).
# So a message's `oms` event stays while the message does (found by its inbox_id, the inbox's
# key), and an order's event, once gone, is unlinked from the order in the same statement (found
# by the order's key, (channel, order id), in its payload): the next event gets no parent, never
# one that is gone (the foreign key parent_id would refuse it). Only events of days already folded
# into the daily roll-up (wheel/services/rollups.py) go, so reports.operations_per_day keeps their
# counts; purge() folds first.
PURGE_EVENTS = text(
    """
    WITH doomed AS (
        SELECT e.id FROM events e
         WHERE e.created_at < now() - make_interval(days => :days)
           AND e.created_at < coalesce((SELECT (r.folded_through + 1)::timestamp AT TIME ZONE 'Asia/Kolkata'
                                          FROM report_rollups r WHERE r.name = 'operations_per_day'), '-infinity')
           AND NOT EXISTS (SELECT 1 FROM events c WHERE c.parent_id = e.id)
           AND NOT EXISTS (SELECT 1 FROM inbox i WHERE e.type = 'oms' AND i.id = e.inbox_id)
           AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.status <> 'sent' AND o.event_id = e.id)
           AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.sent_at IS NULL AND x.event_id = e.id)
           AND NOT (e.name = 'cancellation/held' AND EXISTS (
                    SELECT 1 FROM cancellations k WHERE k.status IN ('held', 'expired')
                       AND k.channel_id = e.channel_id AND k.order_id = e.payload->>'order_id'))
         ORDER BY e.created_at DESC, e.id DESC
         LIMIT :batch
         FOR UPDATE OF e SKIP LOCKED
    ), gone AS (
        DELETE FROM events e USING doomed d WHERE e.id = d.id
        RETURNING e.id, e.channel_id, e.payload->>'order_id' AS order_id
    ), unlinked AS (
        UPDATE orders o SET event_id = NULL FROM gone g
         WHERE g.order_id IS NOT NULL AND o.channel_id = g.channel_id AND o.order_id = g.order_id
           AND o.event_id = g.id
        RETURNING o.id
    )
    SELECT (SELECT count(*) FROM gone) AS purged, (SELECT count(*) FROM unlinked) AS unlinked
    """
)

# Versions (inbox ids) a listing still waits to push: their messages stay. The waiting versions are
# read once per batch and anti-joined by hash (NOT EXISTS): a `NOT IN` against them is checked row
# by row once they outgrow work_mem (over 20 s a batch with 100,000 dirty listings; under 1 s this
# way: `make bench BENCH=scale`). No ORDER BY: it would have the whole backlog anti-joined and sorted
# before the first row; the (status, received_at) index hands each status's messages over oldest
# first anyway, and every message past its period goes in the end.
PURGE_INBOX = text(
    """
    WITH waiting AS MATERIALIZED (
        SELECT v FROM listings l,
               LATERAL (VALUES (CASE WHEN l.ranged_version > l.ranged_settled THEN l.ranged_version END),
                               (CASE WHEN l.quantity_version > l.quantity_settled THEN l.quantity_version END),
                               (CASE WHEN l.price_version > l.price_settled THEN l.price_version END)) AS p(v)
         WHERE l.dirty AND v IS NOT NULL
    )
    DELETE FROM inbox WHERE id IN (
        SELECT i.id FROM inbox i
         WHERE i.status IN ('processed', 'failed')
           AND i.received_at < now() - make_interval(days => :days)
           AND (i.status = 'processed'
                OR (i.status = 'failed' AND EXISTS (SELECT 1 FROM inbox r
                                                  WHERE r.version = coalesce(i.version, i.id) AND r.id > i.id)))
           AND NOT EXISTS (SELECT 1 FROM waiting w WHERE w.v = i.id)
           AND NOT EXISTS (SELECT 1 FROM waiting w WHERE w.v = coalesce(i.version, i.id))
         LIMIT :batch
         FOR UPDATE OF i SKIP LOCKED)
    """
)

# Sent orders only (the partial index ix_orders_unscrubbed finds them); their lines and totals stay.
# raw is NOT NULL: JSON null says it was there and is gone.
SCRUB_ORDERS = text(
    """
    UPDATE orders SET raw = 'null'::jsonb, document = document - 'bill_to' - 'ship_to', scrubbed_at = now()
     WHERE id IN (SELECT id FROM orders
                   WHERE status = 'sent' AND scrubbed_at IS NULL
                     AND received_at < now() - make_interval(days => :days)
                   ORDER BY received_at
                   LIMIT :batch
                   FOR UPDATE SKIP LOCKED)
    """
)

# Sent this long ago (the partial index ix_outbox_sent_at); an unsent row is never touched.
PURGE_SENT_OUTBOX = text(
    """
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox
         WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(days => :days)
         ORDER BY sent_at
         LIMIT :batch
         FOR UPDATE SKIP LOCKED)
    """
)


@dataclass(frozen=True)
class Periods:
    """Days each kind of row is kept (settings: WHEEL_RETENTION_*_DAYS)."""

    events_days: int
    inbox_days: int
    orders_days: int


@dataclass
class PurgeReport:
    events: int = 0
    inbox: int = 0
    orders_scrubbed: int = 0
    outbox: int = 0
    batches: int = 0

    def summary(self) -> str:
        return (f"{self.events} events, {self.inbox} inbox messages, {self.orders_scrubbed} orders scrubbed, "
                f"{self.outbox} sent outbox rows in {self.batches} batches")


def purge(sessions: sessionmaker[Session], periods: Periods, *, batch_size: int, max_batches: int = 10_000) -> PurgeReport:
    """Purge everything past its period, `batch_size` rows a transaction, at most `max_batches`
    transactions per kind in one run (what is left goes at the next run)."""
    report = PurgeReport()
    # The closed days into the roll-up first: the events purge takes only events already counted there.
    rollups.fold(sessions)
    # The inbox first: a message's `oms` event stays as long as the message does.
    report.inbox = _in_batches(sessions, PURGE_INBOX, periods.inbox_days, batch_size, max_batches, report)
    report.events = _in_batches(sessions, PURGE_EVENTS, periods.events_days, batch_size, max_batches, report)
    report.orders_scrubbed = _in_batches(sessions, SCRUB_ORDERS, periods.orders_days, batch_size, max_batches, report)
    report.outbox = _in_batches(sessions, PURGE_SENT_OUTBOX, periods.orders_days, batch_size, max_batches, report)
    return report


def _in_batches(sessions: sessionmaker[Session], statement, days: int, batch_size: int, max_batches: int,
                report: PurgeReport) -> int:
    done = 0
    for _ in range(max_batches):
        with sessions.begin() as session:
            result = session.execute(statement, {"days": days, "batch": batch_size})
            count = result.scalar_one() if result.returns_rows else result.rowcount
        if count == 0:
            # Not `count < batch_size`: deleting an event's children makes it deletable next time.
            break
        done += count
        report.batches += 1
    return done
