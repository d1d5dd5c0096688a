"""Re-driving work that Redis dropped (DESIGN.md contract 5).

Every piece of work is a row first; a task only carries its id. When a task is lost (Redis
restarted empty, a publish that never reached it), the row stays pending, and the sweeper sends
its task again once it has waited past the deadline. Duplicates are harmless: tasks are idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

STALE_INBOX = text(
    """
    UPDATE inbox SET enqueued_at = now()
     WHERE id IN (SELECT id FROM inbox
                   WHERE status = 'received' AND enqueued_at < now() - make_interval(secs => :deadline)
                   ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id
    """
)
STALE_PUSHES = text(
    """
    UPDATE pushes p SET enqueued_at = now()
      FROM channels c
     WHERE c.id = p.channel_id AND p.id IN (
           SELECT id FROM pushes
            WHERE enqueued_at < now() - make_interval(secs => :deadline)
              AND ((status = 'pending' AND next_attempt_at < now() - make_interval(secs => :deadline))
                   OR (status = 'in_progress' AND lease_until < now()))
            ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING p.id, c.marketplace
    """
)


@dataclass(frozen=True)
class SweepReport:
    inbox: int
    pushes: int


def sweep(
    sessions: sessionmaker[Session],
    *,
    deadline_s: float,
    send_process: Callable[[int], None],
    send_push: Callable[[int, str], None],
    limit: int = 5000,
) -> SweepReport:
    params = {"deadline": deadline_s, "limit": limit}
    with sessions.begin() as session:
        inbox_ids = list(session.execute(STALE_INBOX, params).scalars())
        pushes = [(row.id, row.marketplace) for row in session.execute(STALE_PUSHES, params)]
    for inbox_id in inbox_ids:
        send_process(inbox_id)
    for push_id, marketplace in pushes:
        send_push(push_id, marketplace)
    return SweepReport(len(inbox_ids), len(pushes))
