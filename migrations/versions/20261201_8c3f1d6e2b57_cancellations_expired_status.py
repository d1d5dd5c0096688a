"""cancellations.status 'expired': a cancellation held too long for its order

Revision ID: 8c3f1d6e2b57
Revises: 5b1e7c2a9d40
Create Date: 2026-12-01 12:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '8c3f1d6e2b57'
down_revision = '5b1e7c2a9d40'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f('ck_cancellations_known_status'), 'cancellations', type_='check')
    op.create_check_constraint(op.f('ck_cancellations_known_status'), 'cancellations',
                               "status IN ('held', 'expired', 'ready', 'sent')")


def downgrade() -> None:
    op.execute("UPDATE cancellations SET status = 'held' WHERE status = 'expired'")
    op.drop_constraint(op.f('ck_cancellations_known_status'), 'cancellations', type_='check')
    op.create_check_constraint(op.f('ck_cancellations_known_status'), 'cancellations',
                               "status IN ('held', 'ready', 'sent')")
