"""alerts: the outbox of alerts on their way to Slack, and its backlog for Metabase

Revision ID: c4a1e7d2b9f0
Revises: d7b2f9a1c3e5
Create Date: 2026-12-01 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c4a1e7d2b9f0'
down_revision = 'd7b2f9a1c3e5'
branch_labels = None
depends_on = None

# The alert outbox's backlog, beside reports.oms_outbox_backlog: alerts not yet posted to Slack
# (pending, or claimed by a delivery that never marked them sent), per event name and channel.
ALERT_OUTBOX_BACKLOG = sa.text("""
CREATE VIEW reports.alert_outbox_backlog WITH (security_barrier) AS
SELECT a.name AS event, a.channel_id, count(*) AS waiting,
       count(*) FILTER (WHERE a.claimed_at IS NOT NULL) AS claimed,
       min(a.created_at) AS oldest_at,
       extract(epoch FROM now() - min(a.created_at))::bigint AS oldest_age_s,
       max(a.attempts) AS most_attempts,
       (array_agg(a.last_error ORDER BY a.id DESC) FILTER (WHERE a.last_error IS NOT NULL))[1] AS last_error
  FROM alerts a
 WHERE a.sent_at IS NULL
 GROUP BY a.name, a.channel_id
""")
GRANT = sa.text("GRANT SELECT ON reports.alert_outbox_backlog TO wheel_reports")
DROP_VIEW = sa.text("DROP VIEW reports.alert_outbox_backlog")


def upgrade() -> None:
    op.create_table(
        'alerts',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('event_id', sa.BigInteger(), nullable=False),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('channel_id', sa.Text(), nullable=True),
        sa.Column('level', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('claimed_by', sa.Text(), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('message_first_id', sa.BigInteger(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_alerts_event_id_events'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
        sa.UniqueConstraint('event_id', name=op.f('uq_alerts_event_id')),
    )
    op.create_index('ix_alerts_due', 'alerts', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text('sent_at IS NULL AND claimed_at IS NULL'))
    op.create_index(op.f('ix_alerts_name_channel_id_sent_at'), 'alerts', ['name', 'channel_id', 'sent_at'],
                    unique=False)
    op.execute(ALERT_OUTBOX_BACKLOG)
    op.execute(GRANT)


def downgrade() -> None:
    op.execute(DROP_VIEW)
    op.drop_index(op.f('ix_alerts_name_channel_id_sent_at'), table_name='alerts')
    op.drop_index('ix_alerts_due', table_name='alerts', postgresql_where=sa.text('sent_at IS NULL AND claimed_at IS NULL'))
    op.drop_table('alerts')
