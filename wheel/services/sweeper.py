"""Re-driving work that Redis dropped (docs/contracts.md, contract 5), and saying what waits too long.

Every piece of work is a row first; a task only carries its id. When a task is lost (Redis
restarted empty, a publish that never reached it), the row stays pending, and the sweeper sends
its task again once it has waited past the deadline. Duplicates are harmless: tasks are idempotent.

A cancellation held for an order Wheel never received (Amazon: an order cancelled while still
Pending is never pulled) is expired after `held_cancellation_max_age_s`, with an error event, so
it is said once instead of waiting in silence for ever. It still follows its order if the order
turns up after all.

Alerts waiting in the alerts outbox (a post Slack did not take, a burst held for its window, a
delivery task Redis lost) get a delivery pass (wheel/services/alerts.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from wheel.events import NewEvent, Recorded, record
from wheel.services import alerts, outbox, schedules, submissions

log = logging.getLogger(__name__)

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


# Held cancellations past their age, one row per (channel, order): locked, marked expired below.
EXPIRE_HELD = text(
    """
    WITH old AS (
        SELECT id FROM cancellations
         WHERE status = 'held' AND received_at < now() - make_interval(secs => :max_age)
         ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    ), expired AS (
        UPDATE cancellations c SET status = 'expired' FROM old WHERE c.id = old.id
        RETURNING c.id, c.channel_id, c.order_id, c.line_id, c.sku, c.received_at
    )
    SELECT e.channel_id, ch.marketplace, e.order_id, min(e.id) AS first_id, min(e.received_at) AS held_since,
           array_agg(e.line_id ORDER BY e.id) AS lines, array_agg(e.sku ORDER BY e.id) AS skus,
           (SELECT ev.id FROM events ev WHERE ev.name = 'cancellation/held' AND ev.channel_id = e.channel_id
               AND ev.payload->>'order_id' = e.order_id ORDER BY ev.id LIMIT 1) AS held_event
      FROM expired e JOIN channels ch ON ch.id = e.channel_id
     GROUP BY e.channel_id, ch.marketplace, e.order_id
     ORDER BY first_id
    """
)


@dataclass(frozen=True)
class SweepResult:
    inbox: int
    channels: int
    runs: int = 0
    outbox: bool = False
    expired: int = 0  # held cancellations expired (orders)
    alerts: list[Recorded] = field(default_factory=list)
    submissions: int = 0
    alerts_due: bool = False  # alerts waiting in the alerts outbox: a delivery pass was sent


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
    held_cancellation_max_age_s: float | None = None,
    send_alerts: Callable[[], None] | None = None,
    alert_claim_timeout_s: float = alerts.CLAIM_TIMEOUT_S,
    oms_backlog: Callable[[], int] | None = None,
    limit: int = 5000,
) -> SweepResult:
    params = {"deadline": deadline_s, "limit": limit}
    # While tasks wait on the oms queue, a message past its deadline is most likely one of them:
    # a backlog, not a loss. Its task is sent again once the queue is empty and the message still
    # waits. (Re-sending every such message on every sweep turns a backlog into a flood: 260,000
    # tasks for 10,000 messages in the chaos run, tests/chaos/.) If the queue cannot be read, send.
    try:
        backlog = oms_backlog() if oms_backlog is not None else 0
    except Exception as exc:  # noqa: BLE001 - Redis down, say: the lost tasks are re-sent all the same
        log.warning("could not read the oms queue's backlog (%s); re-sending the tasks of waiting messages", exc)
        backlog = 0
    with sessions.begin() as session:
        inbox_ids = [] if backlog else list(session.execute(STALE_INBOX, params).scalars())
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
    expired: list[Recorded] = []
    if held_cancellation_max_age_s is not None:
        with sessions.begin() as session:
            expired = expire_held_cancellations(session, held_cancellation_max_age_s, limit=limit)
    polls = []
    if send_poll is not None:
        # A submission in flight (an Amazon feed) whose poll task Redis lost: poll it again.
        polls = submissions.stale_submissions(sessions, deadline_s=deadline_s)
        for channel_id, marketplace, reference in polls:
            send_poll(channel_id, marketplace, reference)
    # Alerts due (a retry after a Slack outage, a burst's held rows, a pass Redis lost): a pass.
    alerts_due = send_alerts is not None and alerts.any_due(sessions, alert_claim_timeout_s)
    if alerts_due:
        send_alerts()
    return SweepResult(len(inbox_ids), len(channels), len(runs), stale_outbox, len(expired), expired, len(polls),
                       alerts_due)


def expire_held_cancellations(session: Session, max_age_s: float, *, limit: int = 5000) -> list[Recorded]:
    """Expire cancellations held longer than `max_age_s`: one `cancellation/expired` error event per
    order (under its `cancellation/held` event), to alert on."""
    recorded = []
    for row in session.execute(EXPIRE_HELD, {"max_age": max_age_s, "limit": limit}):
        days = max_age_s / 86400
        lines = [line for line in row.lines if line != "*"]
        recorded.append(record(session, NewEvent(
            type="domain", name="cancellation/expired", level="error", parent_id=row.held_event,
            channel_id=row.channel_id, marketplace=row.marketplace,
            dedupe_key=f"cancel:{row.channel_id}:{row.order_id}:expired:{row.first_id}",
            payload={
                "order_id": row.order_id, "lines": lines, "skus": [s for s in row.skus if s != "*"],
                "held_since": row.held_since.isoformat(timespec="seconds"),
                "error": f"the cancellation of order {row.order_id} has waited more than {days:g} days for its "
                         "order, which has not been received; Wheel no longer waits for it",
                "fix": "check the order on the marketplace (an Amazon order cancelled while Pending never "
                       "becomes an order, and then nothing is to be done); if the order does turn up, the "
                       "cancellation still goes to the OMS right after it",
            },
        )))
    return recorded
