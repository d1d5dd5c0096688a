"""reports: read-only views for Metabase and their role; retention: orders.scrubbed_at and the indexes the purge reads

Revision ID: d7b2f9a1c3e5
Revises: e8f3a2b7c1d9
Create Date: 2026-12-01 14:30:00

The views live in the schema `reports`, each answering one question the back office asks every
day (README, "Reports (Metabase)"). They are security-barrier views owned by the migration's role,
so the read-only role `wheel_reports` reads them with no grant on any table: a view reads its
tables with its owner's rights (https://www.postgresql.org/docs/15/rules-privileges.html), and
`security_barrier` keeps a caller's functions from seeing rows the view filters out
(https://www.postgresql.org/docs/15/rules-privileges.html#RULES-PRIVILEGES-SECURITY-BARRIER).
No view shows a customer's name, address or phone (orders.document, orders.raw, outbox.body).

Days are India's (Asia/Kolkata): the back office works in IST; storage stays UTC.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'd7b2f9a1c3e5'
down_revision = 'e8f3a2b7c1d9'
branch_labels = None
depends_on = None

# The role is the cluster's, not the database's: made once, if missing. A migration run by a role
# that may not create roles (docker compose's `wheel`) finds it made by deploy/postgres/10-wheel-role.sh,
# or says what to run.
CREATE_ROLE = sa.text("""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'wheel_reports') THEN
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'the role wheel_reports is missing and % may not create it', current_user
                USING HINT = 'as a superuser: CREATE ROLE wheel_reports NOLOGIN; then migrate again';
        END IF;
        CREATE ROLE wheel_reports NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- another database's migration made it meanwhile
END
$$
""")

# What Wheel did for each (IST day, channel, operation, outcome): events, items (SKUs in them).
# "gave-up" is a push that failed transiently until its retries ran out (system/processing-failed).
OPERATIONS_PER_DAY = sa.text("""
CREATE VIEW reports.operations_per_day WITH (security_barrier) AS
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

# Every error of the last 7 IST days (today and the 6 before), by what failed and why: one row per
# (event, channel, reason); the reason is the marketplace's code for a SKU it refused, else
# the kind of failure, else the event's name. Most frequent first.
FAILURE_REASONS = sa.text("""
CREATE VIEW reports.failure_reasons_last_7_days WITH (security_barrier) AS
WITH failures AS (
    SELECT e.name, e.channel_id, e.created_at,
           coalesce(item.value->>'code', e.payload->>'kind', e.name) AS reason,
           coalesce(item.value->>'error', e.payload->>'error') AS error,
           item.value->>'sku' AS sku
      FROM events e
      LEFT JOIN LATERAL jsonb_array_elements(
                CASE WHEN jsonb_typeof(e.payload->'items') = 'array' THEN e.payload->'items' ELSE '[]'::jsonb END
           ) AS item ON true
     WHERE e.level = 'error'
       AND e.created_at >= ((now() AT TIME ZONE 'Asia/Kolkata')::date - 6) AT TIME ZONE 'Asia/Kolkata'
)
SELECT name AS event, channel_id, reason, count(*) AS occurrences, count(DISTINCT sku) AS skus,
       min(created_at) AS first_at, max(created_at) AS last_at,
       (array_agg(left(error, 500) ORDER BY created_at DESC))[1] AS latest_error
  FROM failures
 GROUP BY name, channel_id, reason
 ORDER BY occurrences DESC, last_at DESC
""")

# What the marketplace should show (contract 2: the inventory while ranged, 0 while deranged; less
# the channel's buffer, capped), beside what Wheel last pushed.
LISTING_STATE = sa.text("""
CREATE VIEW reports.listing_state WITH (security_barrier) AS
SELECT l.channel_id, c.marketplace, l.sku, l.ean,
       l.pushed_ranged AS shown_ranged, l.pushed_quantity AS shown_quantity,
       l.pushed_mrp AS shown_mrp, l.pushed_selling_price AS shown_selling_price,
       l.ranged AS desired_ranged,
       CASE WHEN l.ranged IS FALSE THEN 0
            WHEN l.quantity IS NULL THEN NULL
            ELSE least(greatest(0, l.quantity - c.buffer_stock), coalesce(c.max_quantity, 2147483647)) END
           AS desired_quantity,
       l.mrp AS desired_mrp, l.selling_price AS desired_selling_price,
       l.dirty AS waiting, l.last_error, l.updated_at,
       c.shadow  -- a channel in shadow mode sends nothing: its shown_* are what it would have sent
  FROM listings l JOIN channels c ON c.id = l.channel_id
""")

# SKUs whose desired value is not what the marketplace shows: waiting for a push (or in one), or
# settled as failed; since when, and why. A field never set by the OMS (null) is not compared.
SKUS_NOT_ON_MARKETPLACE = sa.text("""
CREATE VIEW reports.skus_not_on_marketplace WITH (security_barrier) AS
SELECT s.channel_id, s.marketplace, s.sku,
       CASE WHEN s.waiting THEN CASE WHEN l.claimed_by IS NOT NULL AND l.lease_until > now() THEN 'pushing'
                                     ELSE 'waiting' END
            ELSE 'failed' END AS state,
       concat_ws(', ',
           CASE WHEN s.desired_ranged IS NOT NULL AND s.desired_ranged IS DISTINCT FROM s.shown_ranged
                THEN 'ranged' END,
           CASE WHEN s.desired_quantity IS NOT NULL AND s.desired_quantity IS DISTINCT FROM s.shown_quantity
                THEN 'quantity' END,
           CASE WHEN s.desired_mrp IS NOT NULL AND (s.desired_mrp IS DISTINCT FROM s.shown_mrp
                     OR s.desired_selling_price IS DISTINCT FROM s.shown_selling_price)
                THEN 'price' END) AS fields,
       coalesce(l.dirty_since, s.updated_at) AS since,
       now() - coalesce(l.dirty_since, s.updated_at) AS waiting_for,
       l.attempts, l.next_attempt_at, s.last_error
  FROM reports.listing_state s
  JOIN listings l ON l.channel_id = s.channel_id AND l.sku = s.sku
 WHERE s.waiting
    OR (s.desired_ranged IS NOT NULL AND s.desired_ranged IS DISTINCT FROM s.shown_ranged)
    OR (s.desired_quantity IS NOT NULL AND s.desired_quantity IS DISTINCT FROM s.shown_quantity)
    OR (s.desired_mrp IS NOT NULL AND (s.desired_mrp IS DISTINCT FROM s.shown_mrp
                                       OR s.desired_selling_price IS DISTINCT FROM s.shown_selling_price))
""")

# Orders received and lines cancelled per (IST day, channel): counts and money only, never the
# customer. A cancellation is counted on the day Wheel received it.
ORDERS_PER_DAY = sa.text("""
CREATE VIEW reports.orders_per_day WITH (security_barrier) AS
WITH o AS (
    SELECT channel_id, (received_at AT TIME ZONE 'Asia/Kolkata')::date AS day,
           count(*) AS orders,
           count(*) FILTER (WHERE status = 'sent') AS orders_sent,
           count(*) FILTER (WHERE status = 'ready') AS orders_waiting,
           count(*) FILTER (WHERE status = 'failed') AS orders_failed,
           sum(lines) AS order_lines, sum(total) AS order_value
      FROM orders GROUP BY 1, 2
), k AS (
    SELECT channel_id, (received_at AT TIME ZONE 'Asia/Kolkata')::date AS day,
           count(DISTINCT order_id) AS cancelled_orders, count(*) AS cancelled_lines,
           count(*) FILTER (WHERE status = 'sent') AS cancelled_lines_sent,
           count(*) FILTER (WHERE status IN ('held', 'expired')) AS cancelled_lines_held
      FROM cancellations GROUP BY 1, 2
)
SELECT coalesce(o.day, k.day) AS day, coalesce(o.channel_id, k.channel_id) AS channel_id, c.marketplace,
       coalesce(o.orders, 0) AS orders, coalesce(o.orders_sent, 0) AS orders_sent,
       coalesce(o.orders_waiting, 0) AS orders_waiting, coalesce(o.orders_failed, 0) AS orders_failed,
       coalesce(o.order_lines, 0) AS order_lines, coalesce(o.order_value, 0) AS order_value,
       coalesce(k.cancelled_orders, 0) AS cancelled_orders, coalesce(k.cancelled_lines, 0) AS cancelled_lines,
       coalesce(k.cancelled_lines_sent, 0) AS cancelled_lines_sent,
       coalesce(k.cancelled_lines_held, 0) AS cancelled_lines_held
  FROM o FULL JOIN k ON k.channel_id = o.channel_id AND k.day = o.day
  JOIN channels c ON c.id = coalesce(o.channel_id, k.channel_id)
""")

# How far behind each pull is: everything before the watermark is stored (README, "Pulls").
PULL_LAG = sa.text("""
CREATE VIEW reports.pull_lag WITH (security_barrier) AS
SELECT s.channel_id, c.marketplace, s.job, s.enabled, s.cron,
       s.watermark, extract(epoch FROM now() - s.watermark)::bigint AS lag_s,
       s.last_started_at, s.last_finished_at, s.last_outcome, s.last_error, s.next_run_at,
       (SELECT count(*) FROM job_runs r WHERE r.schedule_id = s.id AND r.status = 'failed'
           AND r.created_at >= (now() AT TIME ZONE 'Asia/Kolkata')::date AT TIME ZONE 'Asia/Kolkata') AS runs_failed_today,
       (SELECT count(*) FROM job_runs r WHERE r.schedule_id = s.id AND r.status IN ('due', 'running')) AS runs_open
  FROM schedules s JOIN channels c ON c.id = s.channel_id
""")

# Documents waiting to go to the OMS (contract 4): per kind and channel, how many and since when.
OMS_OUTBOX_BACKLOG = sa.text("""
CREATE VIEW reports.oms_outbox_backlog WITH (security_barrier) AS
SELECT x.kind, x.channel_id, x.queue, count(*) AS waiting, min(x.created_at) AS oldest_at,
       extract(epoch FROM now() - min(x.created_at))::bigint AS oldest_age_s,
       max(x.attempts) AS most_attempts,
       (array_agg(x.last_error ORDER BY x.id DESC) FILTER (WHERE x.last_error IS NOT NULL))[1] AS last_error
  FROM outbox x
 WHERE x.sent_at IS NULL
 GROUP BY x.kind, x.channel_id, x.queue
-- The alert outbox's backlog is reports.alert_outbox_backlog (migration c4a1e7d2b9f0).
""")

# In dependency order: listing_state before the view that reads it.
VIEWS = (OPERATIONS_PER_DAY, FAILURE_REASONS, LISTING_STATE, SKUS_NOT_ON_MARKETPLACE, ORDERS_PER_DAY, PULL_LAG,
         OMS_OUTBOX_BACKLOG)

# The role reads the views and nothing else. Nothing in the schema for anyone but its owner unless
# granted here, view by view (never ON ALL TABLES, which would take in whatever is added later).
# No table, sequence or schema of Wheel's for the role, even one granted by hand before, and no
# default privileges that would give it tables made later (there are none: said anyway).
GRANTS = sa.text("""
REVOKE ALL ON SCHEMA reports FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA reports FROM PUBLIC;
GRANT USAGE ON SCHEMA reports TO wheel_reports;
GRANT SELECT ON reports.operations_per_day, reports.failure_reasons_last_7_days, reports.listing_state,
                reports.skus_not_on_marketplace, reports.orders_per_day, reports.pull_lag,
                reports.oms_outbox_backlog TO wheel_reports;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM wheel_reports;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM wheel_reports;
REVOKE CREATE ON SCHEMA public FROM wheel_reports;
ALTER DEFAULT PRIVILEGES IN SCHEMA reports REVOKE ALL ON TABLES FROM wheel_reports;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM wheel_reports;
""")

DROP_VIEWS = sa.text("""
DROP SCHEMA reports CASCADE;
REVOKE ALL ON SCHEMA public FROM wheel_reports;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM wheel_reports;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM wheel_reports;
""")
# The role is the cluster's: dropped only when nothing else uses it (another database's views, or
# a LOGIN user in it, such as Metabase's, which dropping it would silently cut off).
DROP_ROLE = sa.text("""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'wheel_reports')
       AND NOT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
                        WHERE r.rolname = 'wheel_reports') THEN
        DROP ROLE wheel_reports;
    END IF;
EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege THEN
    RAISE NOTICE 'the role wheel_reports is kept: %', SQLERRM;
END
$$
""")
UNSCRUBBED = sa.text("scrubbed_at IS NULL AND status = 'sent'")
SENT = sa.text("sent_at IS NOT NULL")


def upgrade() -> None:
    op.add_column('orders', sa.Column('scrubbed_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_orders_unscrubbed', 'orders', ['received_at'], unique=False, postgresql_where=UNSCRUBBED)
    op.create_index('ix_outbox_sent_at', 'outbox', ['sent_at'], unique=False, postgresql_where=SENT)
    op.execute(CREATE_ROLE)
    op.execute(sa.text("CREATE SCHEMA reports"))
    for view in VIEWS:
        op.execute(view)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DROP_VIEWS)
    op.execute(DROP_ROLE)
    op.drop_index('ix_outbox_sent_at', table_name='outbox', postgresql_where=SENT)
    op.drop_index('ix_orders_unscrubbed', table_name='orders', postgresql_where=UNSCRUBBED)
    op.drop_column('orders', 'scrubbed_at')
