"""submission_timings: how long each channel's Amazon feeds take, for the choice of PATCH or feed

Revision ID: e3f4a5b6c7d8
Revises: f6a7b8c9d0e1
Create Date: 2026-12-01 17:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'e3f4a5b6c7d8'
down_revision = 'f6a7b8c9d0e1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'submission_timings',
        sa.Column('channel_id', sa.Text(), nullable=False),
        sa.Column('processing_s', sa.Float(), nullable=False),
        sa.Column('last_s', sa.Float(), nullable=False),
        sa.Column('samples', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_submission_timings_channel_id_channels'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_submission_timings')),
    )


def downgrade() -> None:
    op.drop_table('submission_timings')
