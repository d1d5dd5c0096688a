"""submissions: pushes in flight (Amazon feeds), polled by their own task

Revision ID: a7c3e5f1b2d4
Revises: 8c3f1d6e2b57
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'a7c3e5f1b2d4'
down_revision = '8c3f1d6e2b57'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('submissions',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('channel_id', sa.Text(), nullable=False),
    sa.Column('reference', sa.Text(), nullable=False),
    sa.Column('worker', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'in_progress'"), nullable=False),
    sa.Column('items', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('state', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('polls', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('next_poll_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('warned', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('in_progress', 'finished')", name=op.f('ck_submissions_known_status')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_submissions_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_submissions'))
    )
    op.create_index(op.f('ix_submissions_channel_id_reference'), 'submissions', ['channel_id', 'reference'], unique=True)
    op.create_index('ix_submissions_in_progress', 'submissions', ['next_poll_at'], unique=False,
                    postgresql_where=sa.text("status = 'in_progress'"))


def downgrade() -> None:
    op.drop_index('ix_submissions_in_progress', table_name='submissions', postgresql_where=sa.text("status = 'in_progress'"))
    op.drop_index(op.f('ix_submissions_channel_id_reference'), table_name='submissions')
    op.drop_table('submissions')
