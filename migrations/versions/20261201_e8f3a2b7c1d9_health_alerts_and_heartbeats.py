"""health_alerts (open until their cause clears) and heartbeats (beat's last tick)

Revision ID: e8f3a2b7c1d9
Revises: f5e43e7be2c0
Create Date: 2026-12-01 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'e8f3a2b7c1d9'
down_revision = 'f5e43e7be2c0'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('health_alerts',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_health_alerts'))
    )
    op.create_index('ix_health_alerts_open', 'health_alerts', ['name', 'subject'], unique=True,
                    postgresql_where=sa.text('cleared_at IS NULL'))
    op.create_index(op.f('ix_health_alerts_opened_at'), 'health_alerts', ['opened_at'], unique=False)
    op.create_table('heartbeats',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_heartbeats'))
    )


def downgrade() -> None:
    op.drop_table('heartbeats')
    op.drop_index(op.f('ix_health_alerts_opened_at'), table_name='health_alerts')
    op.drop_index('ix_health_alerts_open', table_name='health_alerts', postgresql_where=sa.text('cleared_at IS NULL'))
    op.drop_table('health_alerts')
