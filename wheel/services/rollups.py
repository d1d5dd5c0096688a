"""The daily roll-up behind reports.operations_per_day (migration d2e3f4a5b6c7).

The view counts push outcomes per (IST day, channel, operation, outcome). Aggregating the whole
event log on every read grows with the log (5-12 s at 3M events, `make bench BENCH=scale`), so the
days that are over are folded once into `operations_daily`, one row per (day, channel,
marketplace, event name), and the view adds the live aggregate of the days after them (today, and
yesterday until it is folded) to those rows: the same columns and the same numbers as before.

Which days may be folded. An event's created_at is `now()` of the transaction that writes it: its
start, not its commit. An event of a transaction still open can therefore land, once committed, on
a day that already looks over, and a fold that had taken that day would never see it. A day is
folded only once it ended before
- `now()` less `margin_s` (an hour by default), and
- the start of the oldest transaction open in the database (pg_stat_activity; another role's
  sessions show no start to a role without pg_read_all_stats, which the margin covers),
so every event of a folded day was committed before the fold read it. A day is folded once, whole,
and `report_rollups.folded_through` moves in the same transaction as its rows.

Retention: purged events' counts stay in the roll-up (a report of what Wheel did does not shrink
when the log is purged). The purge folds first, and deletes only events of folded days
(wheel/services/retention.PURGE_EVENTS), so no event goes uncounted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from wheel.db import locks

log = logging.getLogger("wheel.rollups")

NAME = "operations_per_day"
# Days folded per transaction: the first fold after the migration takes the whole log, a week at a
# time, so no transaction is long.
DAYS_PER_FOLD = 7
MARGIN_S = 3600

# The last IST day that may be folded (see the module's docstring), and the first not yet folded.
BOUNDS = text("""
SELECT (least(now() - make_interval(secs => :margin),
              coalesce((SELECT min(a.xact_start) FROM pg_stat_activity a
                         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                           AND a.backend_type = 'client backend'), 'infinity'))
        AT TIME ZONE 'Asia/Kolkata')::date - 1 AS foldable,
       (SELECT r.folded_through + 1 FROM report_rollups r WHERE r.name = :name) AS next_day,
       (SELECT (min(e.created_at) AT TIME ZONE 'Asia/Kolkata')::date FROM events e) AS first_day
""")

# The rows of the view for IST days [:first, :last]: the same filter and the same counts as
# reports.operations_per_day computed them from the events (migration c1d2e3f4a5b6).
FOLD = text("""
INSERT INTO operations_daily (day, channel_id, marketplace, name, events, items)
SELECT r.day, r.channel_id, r.marketplace, r.name, count(*), sum(r.items)
  FROM (SELECT (e.created_at AT TIME ZONE 'Asia/Kolkata')::date AS day, e.channel_id, e.marketplace, e.name,
               CASE WHEN jsonb_typeof(e.payload->'items') = 'array' THEN jsonb_array_length(e.payload->'items') ELSE 0 END
                   AS items
          FROM events e
         WHERE e.created_at >= CAST(:first AS date)::timestamp AT TIME ZONE 'Asia/Kolkata'
           AND e.created_at < (CAST(:last AS date) + 1)::timestamp AT TIME ZONE 'Asia/Kolkata'
           AND e.channel_id IS NOT NULL
           AND (split_part(e.name, '/', 1) IN ('ranging', 'deranging', 'inventory', 'pricing')
                OR e.name = 'system/processing-failed')
        OFFSET 0) r
 GROUP BY 1, 2, 3, 4
""")

MARK = text("""
INSERT INTO report_rollups (name, folded_through, folded_at) VALUES (:name, :last, now())
ON CONFLICT (name) DO UPDATE SET folded_through = EXCLUDED.folded_through, folded_at = EXCLUDED.folded_at
""")


@dataclass
class FoldReport:
    days: int = 0
    rows: int = 0
    through: date | None = None
    skipped: bool = False


def fold(sessions: sessionmaker[Session], *, margin_s: float = MARGIN_S, through: date | None = None,
         days_per_fold: int = DAYS_PER_FOLD) -> FoldReport:
    """Fold every closed day not yet folded into operations_daily (no later than `through` when
    given), `days_per_fold` days a transaction. Another fold under way: skipped."""
    report = FoldReport()
    while True:
        with sessions.begin() as session:
            if not session.execute(locks.TRY_XACT_LOCK, {"k": locks.ROLLUP_LOCK}).scalar_one():
                report.skipped = True
                return report
            bounds = session.execute(BOUNDS, {"margin": margin_s, "name": NAME}).one()
            last = bounds.foldable if through is None else min(bounds.foldable, through)
            first = bounds.next_day if bounds.next_day is not None else bounds.first_day
            if first is None:  # no events and nothing folded: the next fold starts at the first event's day
                return report
            if first > last:
                return report
            last = min(last, date.fromordinal(first.toordinal() + days_per_fold - 1))
            rows = session.execute(FOLD, {"first": first, "last": last}).rowcount
            session.execute(MARK, {"name": NAME, "last": last})
        report.days += (last - first).days + 1
        report.rows += rows
        report.through = last
        log.info("operations_per_day: folded %s to %s (%d rows)", first, last, rows)
