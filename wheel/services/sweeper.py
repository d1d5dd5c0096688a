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

from wheel.services import outbox, schedules, sync

STALE_INBOX = text(
    """
    UPDATE inbox SET enqueued_at = now()
     WHERE id IN (SELECT id FROM inbox
                   WHERE status = 'received' AND enqueued_at < now() - make_interval(secs => :deadline)
                   ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id
    """
)
# Channels with listings waiting longer than the deadline that nobody holds.
STALE_CHANNELS = text(
    """
    SELECT DISTINCT l.channel_id, c.marketplace
      FROM listings l JOIN channels c ON c.id = l.channel_id
     WHERE l.dirty AND c.enabled
       AND l.next_attempt_at < now() - make_interval(secs => :deadline)
       AND l.dirty_since < now() - make_interval(secs => :deadline)
       AND (l.lease_until IS NULL OR l.lease_until < now())
    """
)


@dataclass(frozen=True)
class SweepReport:
    inbox: int
    channels: int
    runs: int = 0
    outbox: bool = False
    submissions: int = 0


def sweep(
    sessions: sessionmaker[Session],
    *,
    deadline_s: float,
    send_process: Callable[[int], None],
    send_sync: Callable[[str, str], None],
    run_deadline_s: float | None = None,
    send_run: Callable[[int, str], None] | None = None,
    send_publish: Callable[[], None] | None = None,
    send_poll: Callable[[str, str, str], None] | None = None,
    limit: int = 5000,
) -> SweepReport:
    params = {"deadline": deadline_s, "limit": limit}
    with sessions.begin() as session:
        inbox_ids = list(session.execute(STALE_INBOX, params).scalars())
        channels = [(row.channel_id, row.marketplace) for row in session.execute(STALE_CHANNELS, params)]
    for inbox_id in inbox_ids:
        send_process(inbox_id)
    for channel_id, marketplace in channels:
        send_sync(channel_id, marketplace)
    runs, stale_outbox = [], False
    if send_run is not None:
        with sessions.begin() as session:
            runs = schedules.stale_runs(session, deadline_s=run_deadline_s or deadline_s)
        for run in runs:
            send_run(run.run_id, run.marketplace)
    if send_publish is not None:
        stale_outbox = outbox.stale_pending(sessions, deadline_s=deadline_s)
        if stale_outbox:
            send_publish()
    polls = []
    if send_poll is not None:
        # A submission in flight (an Amazon feed) whose poll task Redis lost: poll it again.
        polls = sync.stale_submissions(sessions, deadline_s=deadline_s)
        for channel_id, marketplace, reference in polls:
            send_poll(channel_id, marketplace, reference)
    return SweepReport(len(inbox_ids), len(channels), len(runs), stale_outbox, len(polls))
