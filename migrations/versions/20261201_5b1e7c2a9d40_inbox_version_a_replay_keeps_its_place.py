"""inbox.version: a replayed message keeps the place of the message it replays

Revision ID: 5b1e7c2a9d40
Revises: d662f42136ca
Create Date: 2026-12-01 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '5b1e7c2a9d40'
down_revision = 'd662f42136ca'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('inbox', sa.Column('version', sa.BigInteger(), nullable=True))
    # Replays made before this column keep a null version: their values were set at their own id.
    op.create_index(op.f('ix_inbox_version'), 'inbox', ['version'], unique=False,
                    postgresql_where=sa.text('version IS NOT NULL'))


def downgrade() -> None:
    op.drop_index(op.f('ix_inbox_version'), table_name='inbox', postgresql_where=sa.text('version IS NOT NULL'))
    op.drop_column('inbox', 'version')
