"""events: find the events that name a SKU (`wheelctl events --sku`) through an index

Revision ID: a9c8e7f6d5b4
Revises: c4a1e7d2b9f0
Create Date: 2026-12-01 15:00:00.000000

Event payloads name SKUs in three shapes: `items: [{"sku": ...}]` (the OMS items and the push
outcomes), `skus: [...]` (orders and cancellations) and `sku`. `event_skus(payload)` gathers them
into one text array, and a GIN index on it answers `event_skus(payload) @> ARRAY['SKU']`
(https://www.postgresql.org/docs/current/indexes-expressional.html,
https://www.postgresql.org/docs/current/gin.html). It indexes only the SKUs, not the whole payload
(the raw bodies and marketplace records in it would make a GIN index on it large and slow to write).
The function never fails on a payload of another shape: an insert must never fail for its index.
"""

from __future__ import annotations

from alembic import op

revision = 'a9c8e7f6d5b4'
down_revision = 'c4a1e7d2b9f0'
branch_labels = None
depends_on = None

EVENT_SKUS = """
CREATE FUNCTION event_skus(payload jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ARRAY(
        SELECT item ->> 'sku'
          FROM jsonb_array_elements(CASE WHEN jsonb_typeof(payload -> 'items') = 'array'
                                         THEN payload -> 'items' ELSE '[]'::jsonb END) AS item
         WHERE jsonb_typeof(item -> 'sku') = 'string'
        UNION
        SELECT sku #>> '{}'
          FROM jsonb_array_elements(CASE WHEN jsonb_typeof(payload -> 'skus') = 'array'
                                         THEN payload -> 'skus' ELSE '[]'::jsonb END) AS sku
         WHERE jsonb_typeof(sku) = 'string'
        UNION
        SELECT payload ->> 'sku' WHERE jsonb_typeof(payload -> 'sku') = 'string'
    )
$$
"""


def upgrade() -> None:
    op.execute(EVENT_SKUS)
    op.execute("CREATE INDEX ix_events_skus ON events USING gin (event_skus(payload))")


def downgrade() -> None:
    op.execute("DROP INDEX ix_events_skus")
    op.execute("DROP FUNCTION event_skus(jsonb)")
