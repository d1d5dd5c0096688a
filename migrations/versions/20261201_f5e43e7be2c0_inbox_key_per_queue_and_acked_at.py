"""inbox: the dedupe key per queue, and when the bridge acknowledged each message

Revision ID: f5e43e7be2c0
Revises: a7c3e5f1b2d4
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'f5e43e7be2c0'
down_revision = 'a7c3e5f1b2d4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('inbox', sa.Column('acked_at', sa.DateTime(timezone=True), nullable=True))
    # Rows stored before this column existed were, but for a batch in hand at the upgrade,
    # acknowledged long ago. Only rows of messages sent without an id are ever matched on it
    # (wheel/services/inbox.py), and counting those as acknowledged errs towards storing a
    # redelivery twice, never towards dropping a new message.
    op.execute("UPDATE inbox SET acked_at = received_at WHERE transport_message_id LIKE 'body-sha256:%'")
    op.drop_constraint(op.f('uq_inbox_transport_message_id'), 'inbox', type_='unique')
    op.create_unique_constraint(op.f('uq_inbox_queue_transport_message_id'), 'inbox', ['queue', 'transport_message_id'])


def downgrade() -> None:
    # Fails if two queues hold the same message id, which only this revision allows.
    op.drop_constraint(op.f('uq_inbox_queue_transport_message_id'), 'inbox', type_='unique')
    op.create_unique_constraint(op.f('uq_inbox_transport_message_id'), 'inbox', ['transport_message_id'])
    op.drop_column('inbox', 'acked_at')
