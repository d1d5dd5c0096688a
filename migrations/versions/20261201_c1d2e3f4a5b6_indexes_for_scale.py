"""indexes for scale: the dirty-listing claim, the events purge, orders per day; operations_per_day aggregated by hash

Revision ID: c1d2e3f4a5b6
Revises: b3d4e5f6a7c8
Create Date: 2026-12-01 15:00:00

Measured by `make bench BENCH=scale` (tests/bench/bench_scale.py, plans in
build/bench/scale-plans.txt) at 1M listings (100,000 SKUs x 10 channels, 10% dirty), 1M inbox
messages, orders and outbox rows, and 1M to 3M events; README, "How much one Postgres holds":

- ix_listings_claim (channel_id, dirty_since, sku) WHERE dirty: the claim of a sync run
  (wheel/services/sync.CLAIM) takes the channel's longest-waiting dirty listings in that order.
  With only ix_listings_dirty (channel_id, next_attempt_at) it read every dirty listing of the
  channel from the table and sorted them (a bitmap heap scan of 10,000 rows, 600 ms); now an index
  scan in order stops at the limit, whatever the backlog. `wheelctl status` reads each channel's
  oldest dirty listing from it too (wheel/services/status.py).
- ix_orders_unsent_event (event_id) WHERE status <> 'sent': the events purge keeps the event of an
  order not yet sent (wheel/services/retention.PURGE_EVENTS); without it each batch read all of
  orders (a sequential scan of 1M rows, 1.2 s a batch; 19 ms with it). Only unsent orders are in
  it: a few rows.
- ix_orders_channel_received (channel_id, received_at) INCLUDE (status, lines, total):
  reports.orders_per_day reads those columns of every order; an index-only scan of this narrow
  index instead of the table (its documents and raw orders) takes it from 2.6 s to 0.8 s at 1M
  orders.
- reports.operations_per_day computes each event's item count in a subquery kept apart (OFFSET 0)
  and groups by hash: grouped by sort, as before, every row was sorted with its payload and the
  sort spilled to disk (3.4 s at 1M events; 1.2 s this way). Same columns, same rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c1d2e3f4a5b6'
down_revision = 'b3d4e5f6a7c8'
branch_labels = None
depends_on = None

DIRTY = sa.text("dirty")
UNSENT = sa.text("status <> 'sent'")

# The OFFSET 0 keeps the subquery from being merged into the outer query, so the scan computes
# each row's item count and the aggregate carries an integer instead of the payload.
OPERATIONS_PER_DAY = sa.text("""
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

# As migration d7b2f9a1c3e5 made it.
OPERATIONS_PER_DAY_BEFORE = sa.text("""
CREATE OR REPLACE VIEW reports.operations_per_day WITH (security_barrier) AS
SELECT (e.created_at AT TIME ZONE 'Asia/Kolkata')::date AS day,
       e.channel_id, e.marketplace,
       CASE WHEN e.name = 'system/processing-failed' THEN 'push' ELSE split_part(e.name, '/', 1) END AS operation,
       CASE WHEN e.name = 'system/processing-failed' THEN 'gave-up' ELSE split_part(e.name, '/', 2) END AS outcome,
       count(*) AS events,
       sum(CASE WHEN jsonb_typeof(e.payload->'items') = 'array' THEN jsonb_array_length(e.payload->'items') ELSE 0 END)
           AS items
  FROM events e
 WHERE e.channel_id IS NOT NULL
   AND (split_part(e.name, '/', 1) IN ('ranging', 'deranging', 'inventory', 'pricing')
        OR e.name = 'system/processing-failed')
 GROUP BY 1, 2, 3, 4, 5
""")


def upgrade() -> None:
    op.create_index('ix_listings_claim', 'listings', ['channel_id', 'dirty_since', 'sku'], unique=False,
                    postgresql_where=DIRTY)
    op.create_index('ix_orders_unsent_event', 'orders', ['event_id'], unique=False, postgresql_where=UNSENT)
    op.create_index('ix_orders_channel_received', 'orders', ['channel_id', 'received_at'], unique=False,
                    postgresql_include=['status', 'lines', 'total'])
    op.execute(OPERATIONS_PER_DAY)


def downgrade() -> None:
    op.execute(OPERATIONS_PER_DAY_BEFORE)
    op.drop_index('ix_orders_channel_received', table_name='orders')
    op.drop_index('ix_orders_unsent_event', table_name='orders', postgresql_where=UNSENT)
    op.drop_index('ix_listings_claim', table_name='listings', postgresql_where=DIRTY)
