"""Purging what Wheel no longer needs: the event log, the raw OMS messages and the customers' data
of orders, each after its own period (WHEEL_RETENTION_*_DAYS), run by beat (workers/app.py).

Each purge goes a batch at a time, each batch its own short transaction, oldest first, so it never
holds many locks or a long transaction beside the pulls and pushes; rows a worker holds are skipped
(`SKIP LOCKED`) and taken by the next run.

What is kept, whatever its age, because something still needs it:
- events: an event another event hangs under (the foreign key `parent_id`: children go first, and
  their parent goes in a later batch), the `oms` event of a message not yet processed, the
  `order/received` of an order or the event of an outbox row not yet sent to the OMS, and the
  `cancellation/held` event of a cancellation still held or expired (its expiry and its release
  hang under it);
- inbox: a message not yet processed (`received`); a `failed` message never replayed (docs/contracts.md,
  contract 6: kept for the operator to fix and replay; once a later replay of it exists, it goes); a message whose values a listing still
  waits to push (its id is the version, contract 2);
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

# Highest ids first within the period, so an event's children (always newer) go before it.
PURGE_EVENTS = text(
    """
    DELETE FROM events WHERE id IN (
        SELECT e.id FROM events e
         WHERE e.created_at < now() - make_interval(days => :days)
           AND NOT EXISTS (SELECT 1 FROM events c WHERE c.parent_id = e.id)
           AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.status = 'received' AND i.event_id = e.id)
           AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.status <> 'sent' AND o.event_id = e.id)
           AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.sent_at IS NULL AND x.event_id = e.id)
           AND NOT (e.name = 'cancellation/held' AND EXISTS (
                    SELECT 1 FROM cancellations k WHERE k.status IN ('held', 'expired')
                       AND k.channel_id = e.channel_id AND k.order_id = e.payload->>'order_id'))
         ORDER BY e.id DESC
         LIMIT :batch
         FOR UPDATE OF e SKIP LOCKED)
    """
)

# Versions (inbox ids) a listing still waits to push: their messages stay.
PURGE_INBOX = text(
    """
    WITH waiting AS (
        SELECT v FROM listings l,
               LATERAL (VALUES (CASE WHEN l.ranged_version > l.ranged_settled THEN l.ranged_version END),
                               (CASE WHEN l.quantity_version > l.quantity_settled THEN l.quantity_version END),
                               (CASE WHEN l.price_version > l.price_settled THEN l.price_version END)) AS p(v)
         WHERE l.dirty AND v IS NOT NULL
    )
    DELETE FROM inbox WHERE id IN (
        SELECT i.id FROM inbox i
         WHERE i.received_at < now() - make_interval(days => :days)
           AND (i.status = 'processed'
                OR (i.status = 'failed' AND EXISTS (SELECT 1 FROM inbox r
                                                  WHERE r.version = coalesce(i.version, i.id) AND r.id > i.id)))
           AND i.id NOT IN (SELECT v FROM waiting)
           AND coalesce(i.version, i.id) NOT IN (SELECT v FROM waiting)
         ORDER BY i.id
         LIMIT :batch
         FOR UPDATE OF i SKIP LOCKED)
    """
)

# Sent orders only (the partial index ix_orders_unscrubbed finds them); their lines and totals stay.
SCRUB_ORDERS = text(
    """
    UPDATE orders SET raw = NULL, document = document - 'bill_to' - 'ship_to', scrubbed_at = now()
     WHERE id IN (SELECT id FROM orders
                   WHERE status = 'sent' AND scrubbed_at IS NULL
                     AND received_at < now() - make_interval(days => :days)
                   ORDER BY received_at
                   LIMIT :batch
                   FOR UPDATE SKIP LOCKED)
    """
)

PURGE_SENT_OUTBOX = text(
    """
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox
         WHERE sent_at IS NOT NULL AND created_at < now() - make_interval(days => :days)
         ORDER BY id
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
    report.events = _in_batches(sessions, PURGE_EVENTS, periods.events_days, batch_size, max_batches, report)
    report.inbox = _in_batches(sessions, PURGE_INBOX, periods.inbox_days, batch_size, max_batches, report)
    report.orders_scrubbed = _in_batches(sessions, SCRUB_ORDERS, periods.orders_days, batch_size, max_batches, report)
    report.outbox = _in_batches(sessions, PURGE_SENT_OUTBOX, periods.orders_days, batch_size, max_batches, report)
    return report


def _in_batches(sessions: sessionmaker[Session], statement, days: int, batch_size: int, max_batches: int,
                report: PurgeReport) -> int:
    done = 0
    for _ in range(max_batches):
        with sessions.begin() as session:
            count = session.execute(statement, {"days": days, "batch": batch_size}).rowcount
        if count == 0:
            # Not `count < batch_size`: deleting an event's children makes it deletable next time.
            break
        done += count
        report.batches += 1
    return done
