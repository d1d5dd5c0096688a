"""operations_daily: reports.operations_per_day answers from a daily roll-up of closed days plus the live days after them; listings with room for HOT updates

Revision ID: d2e3f4a5b6c7
Revises: e3f4a5b6c7d8
Create Date: 2026-12-01 17:30:00

reports.operations_per_day aggregated the whole event log on every read: 1.2-1.7 s at 1M events,
5-12 s at 3M (`make bench BENCH=scale`, README "How much one Postgres holds"). Now the IST days
that are over are folded once into `operations_daily` (one row per day, channel, marketplace and
event name) by wheel/services/rollups.fold, which the retention purge runs first (hourly, on beat);
`report_rollups.folded_through` says up to which day. The view reads those rows up to that day and
aggregates only the events after it (the created_at index finds them), so it reads a day or two of
events whatever the size of the log. Same columns, same types, same numbers: before the first
fold, the view is the live aggregate of every day, as before.

The tables are in `public`, not `reports`: the reports role reads the view (with its owner's rights)
and nothing else.

listings gets fillfactor 80. Its rows are written all day (each claim writes its lease, renewals
write it again, the settle and release write it back), and a table filled to 100% has no room on a
row's page for its new version: every such update then writes a new entry in each of the three
indexes (pk_listings, ix_listings_dirty, ix_listings_claim), and the claim's index scan reads those
entries until vacuum takes them. With room on the page, an update that changes no indexed column
(the lease: lease_until, claimed_by) is a heap-only tuple and touches no index
(https://www.postgresql.org/docs/15/storage-hot.html; fillfactor:
https://www.postgresql.org/docs/15/sql-createtable.html#SQL-CREATETABLE-STORAGE-PARAMETERS).
At 1M listings the claim of 500 wrote 3,000 WAL records (300 kB) and 1,000 (74 kB) after it.
The setting applies to pages written from now on; an existing table gets the room on every page
when rewritten (VACUUM FULL listings, which locks it: at a quiet time), or as its pages fill again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'd2e3f4a5b6c7'
down_revision = 'e3f4a5b6c7d8'
branch_labels = None
depends_on = None

# The live part's items are computed in a subquery kept apart (OFFSET 0), as in c1d2e3f4a5b6, so
# the aggregate carries an integer, not the payload. sum() of bigint is numeric: cast back to the
# bigint the view always had.
OPERATIONS_PER_DAY = sa.text("""
CREATE OR REPLACE VIEW reports.operations_per_day WITH (security_barrier) AS
WITH mark AS (SELECT r.folded_through FROM report_rollups r WHERE r.name = 'operations_per_day'),
counted AS (
    SELECT d.day, d.channel_id, d.marketplace, d.name, d.events, d.items
      FROM operations_daily d
     WHERE d.day <= (SELECT folded_through FROM mark)
    UNION ALL
    SELECT l.day, l.channel_id, l.marketplace, l.name, 1, l.items
      FROM (SELECT (e.created_at AT TIME ZONE 'Asia/Kolkata')::date AS day, e.channel_id, e.marketplace, e.name,
                   CASE WHEN jsonb_typeof(e.payload->'items') = 'array' THEN jsonb_array_length(e.payload->'items')
                        ELSE 0 END AS items
              FROM events e
             WHERE e.created_at >= coalesce(((SELECT folded_through FROM mark) + 1)::timestamp
                                            AT TIME ZONE 'Asia/Kolkata', '-infinity')
               AND e.channel_id IS NOT NULL
               AND (split_part(e.name, '/', 1) IN ('ranging', 'deranging', 'inventory', 'pricing')
                    OR e.name = 'system/processing-failed')
            OFFSET 0) l
)
SELECT r.day, r.channel_id, r.marketplace,
       CASE WHEN r.name = 'system/processing-failed' THEN 'push' ELSE split_part(r.name, '/', 1) END AS operation,
       CASE WHEN r.name = 'system/processing-failed' THEN 'gave-up' ELSE split_part(r.name, '/', 2) END AS outcome,
       sum(r.events)::bigint AS events, sum(r.items)::bigint AS items
  FROM counted r
 GROUP BY 1, 2, 3, 4, 5
""")

# As migration c1d2e3f4a5b6 made it.
OPERATIONS_PER_DAY_BEFORE = sa.text("""
CREATE OR REPLACE VIEW reports.operations_per_day WITH (security_barrier) AS
SELECT r.day, r.channel_id, r.marketplace,
       CASE WHEN r.name = 'system/processing-failed' THEN 'push' ELSE split_part(r.name, '/', 1) END AS operation,
       CASE WHEN r.name = 'system/processing-failed' THEN 'gave-up' ELSE split_part(r.name, '/', 2) END AS outcome,
       count(*) AS events, sum(r.items) AS items
  FROM (SELECT (e.created_at AT TIME ZONE 'Asia/Kolkata')::date AS day, e.channel_id, e.marketplace, e.name,
               CASE WHEN jsonb_typeof(e.payload->'items') = 'array' THEN jsonb_array_length(e.payload->'items') ELSE 0 END
                   AS items
          FROM events e
         WHERE e.channel_id IS NOT NULL
           AND (split_part(e.name, '/', 1) IN ('ranging', 'deranging', 'inventory', 'pricing')
                OR e.name = 'system/processing-failed')
        OFFSET 0) r
 GROUP BY 1, 2, 3, 4, 5
""")


def upgrade() -> None:
    op.create_table(
        'operations_daily',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('channel_id', sa.Text(), nullable=False),
        sa.Column('marketplace', sa.Text(), nullable=True),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('events', sa.BigInteger(), nullable=False),
        sa.Column('items', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_operations_daily')),
    )
    op.create_index(op.f('ix_operations_daily_day'), 'operations_daily', ['day'], unique=False)
    op.create_table(
        'report_rollups',
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('folded_through', sa.Date(), nullable=False),
        sa.Column('folded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_report_rollups')),
    )
    op.execute(OPERATIONS_PER_DAY)
    op.execute(sa.text("ALTER TABLE listings SET (fillfactor = 80)"))


def downgrade() -> None:
    op.execute(sa.text("ALTER TABLE listings RESET (fillfactor)"))
    op.execute(OPERATIONS_PER_DAY_BEFORE)
    op.drop_table('report_rollups')
    op.drop_index(op.f('ix_operations_daily_day'), table_name='operations_daily')
    op.drop_table('operations_daily')
