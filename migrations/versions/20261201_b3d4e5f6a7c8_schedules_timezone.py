"""schedules: the time zone each cron expression is read in

Revision ID: b3d4e5f6a7c8
Revises: a9c8e7f6d5b4
Create Date: 2026-12-01 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'b3d4e5f6a7c8'
down_revision = 'a9c8e7f6d5b4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Schedules made before this revision were read in UTC, and keep that meaning; new ones get
    # the zone wheelctl gives (the display zone, WHEEL_DISPLAY_TZ, unless --tz says).
    op.add_column('schedules', sa.Column('timezone', sa.Text(), server_default=sa.text("'UTC'"), nullable=False))


def downgrade() -> None:
    op.drop_column('schedules', 'timezone')
