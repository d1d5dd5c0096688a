"""marketplace_lookups: FSNs, location ids, listing status and product types, cached for every worker

Revision ID: f6a7b8c9d0e1
Revises: c1d2e3f4a5b6
Create Date: 2026-12-01 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'f6a7b8c9d0e1'
down_revision = 'c1d2e3f4a5b6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'marketplace_lookups',
        sa.Column('channel_id', sa.Text(), nullable=False),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('sku', sa.Text(), nullable=False),
        sa.Column('value', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('fetched_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_marketplace_lookups_channel_id_channels'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('channel_id', 'kind', 'sku', name=op.f('pk_marketplace_lookups')),
    )
    op.create_index(op.f('ix_marketplace_lookups_expires_at'), 'marketplace_lookups', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_marketplace_lookups_expires_at'), table_name='marketplace_lookups')
    op.drop_table('marketplace_lookups')
