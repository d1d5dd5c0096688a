"""Delivering the alerts outbox to Slack (the table `alerts`, written with each event: wheel/events.py).

A pass, one at a time (a transaction-level advisory lock while it claims):

1. Takes the due rows (`sent_at` and `claimed_at` empty, `next_attempt_at` passed), in id order,
   `FOR UPDATE SKIP LOCKED`, and groups them by (event name, channel).
2. Bursts: a group whose last message went out (or is going out) less than
   WHEEL_ALERT_BURST_WINDOW_S ago waits until that window ends, then goes as one message with its
   count and its first event ids. So a run of one failure is one message at once and one more per
   window, whatever the run's length.
3. Claims the rest (`claimed_at`, `claimed_by`) and COMMITS the claim; only then posts, one
   message per group; and marks the rows sent after each post.

Once per row: the claim is committed before the post, so a redelivered task, a second worker or
the sweeper never sees a claimed row as due, and never posts it again while its post may be going.
The other order (post inside the transaction that holds the rows, then commit) would post twice
whenever a worker died between Slack's answer and the commit, and Slack's chat.postMessage has no
idempotency key to make a second post harmless. A worker killed during the post itself leaves its
rows claimed and unsent (`claimed_at` set, `sent_at` empty): once the claim is older than
WHEEL_ALERT_CLAIM_TIMEOUT_S (well over a post's own timeout, so that worker is gone), a pass takes
them again. A lost alert is worse than the rare duplicate of a worker killed between Slack's answer
and its mark (found by the chaos run, tests/chaos/). A post that fails (Slack down, a 5xx, no answer
within the timeout) puts its rows back with a later `next_attempt_at` (5 s, doubling up to
WHEEL_ALERT_RETRY_MAX_S); a 429 puts back this group and every group not yet posted in the pass,
until Slack's Retry-After. The sweeper (wheel/services/sweeper.py) starts a pass whenever rows are
due, so an alert whose task Redis lost, or that waits out an outage, still goes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from wheel.alert_layout import AlertEvent, SlackMessage, build_message, escape
from wheel.notifications import NotDelivered, Sender, Throttled

log = logging.getLogger("wheel.alerts")

DELIVERY_LOCK = 0x77686C0A  # "whl" + alerts
FIRST_RETRY_S = 5.0
CLAIM_TIMEOUT_S = 60.0

# Unsent and due: never claimed (or put back), or claimed longer ago than the claim timeout.
UNSENT_AND_DUE = """
    sent_at IS NULL AND next_attempt_at <= now()
    AND (claimed_at IS NULL OR claimed_at < now() - make_interval(secs => :claim_timeout))
"""

DUE = text(
    """
    SELECT id, event_id, name, channel_id FROM alerts
     WHERE """ + UNSENT_AND_DUE + """
     ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    """
)
# When the group's last message went (or is going) out, if within the window.
LAST_MESSAGE = text(
    """
    SELECT max(coalesce(sent_at, claimed_at)) FROM alerts
     WHERE name = :name AND channel_id IS NOT DISTINCT FROM :channel
       AND (sent_at > now() - make_interval(secs => :window)
            OR (sent_at IS NULL AND claimed_at > now() - make_interval(secs => :window)))
    """
)
HOLD = text("UPDATE alerts SET next_attempt_at = :until WHERE id = ANY(:ids)")
CLAIM = text(
    "UPDATE alerts SET claimed_at = now(), claimed_by = :worker, attempts = attempts + 1 WHERE id = ANY(:ids)"
)
EVENTS = text(
    """
    SELECT e.id, e.name, e.level, e.parent_id, e.channel_id, e.marketplace, e.inbox_id, e.payload,
           c.marketplace AS channel_marketplace, c.options->>'name' AS channel_name
      FROM events e LEFT JOIN channels c ON c.id = e.channel_id
     WHERE e.id = ANY(:ids)
    """
)
SENT = text("UPDATE alerts SET sent_at = now(), message_first_id = :first, last_error = NULL WHERE id = ANY(:ids)")
RELEASE = text(
    """
    UPDATE alerts SET claimed_at = NULL, claimed_by = NULL, last_error = :error,
           next_attempt_at = now() + make_interval(secs => least(:max_s, :first_s * power(2, greatest(attempts - 1, 0))))
     WHERE id = ANY(:ids)
    """
)
RELEASE_UNTIL = text(
    """
    UPDATE alerts SET claimed_at = NULL, claimed_by = NULL, last_error = :error,
           next_attempt_at = now() + make_interval(secs => :wait_s)
     WHERE id = ANY(:ids)
    """
)
NEXT_DUE = text(
    """
    SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM alerts
     WHERE sent_at IS NULL AND claimed_at IS NULL
    """
)
ANY_DUE = text("SELECT EXISTS (SELECT 1 FROM alerts WHERE " + UNSENT_AND_DUE + ")")


@dataclass(frozen=True)
class DeliveryOptions:
    window_s: float = 60.0
    first_ids: int = 5
    payload_chars: int = 1500
    retry_max_s: float = 300.0
    batch: int = 2000
    claim_timeout_s: float = CLAIM_TIMEOUT_S


@dataclass
class DeliveryReport:
    messages: int = 0
    alerts: int = 0
    held: int = 0
    failed: int = 0
    busy: bool = False
    throttled_s: float | None = None
    # Seconds until the next row is due (held bursts, retries); None when nothing waits.
    next_in_s: float | None = None

    def summary(self) -> str:
        text_ = f"{self.alerts} alerts in {self.messages} messages, {self.held} held, {self.failed} not delivered"
        return text_ + (" (busy)" if self.busy else "") + (
            f" (throttled {self.throttled_s:g} s)" if self.throttled_s is not None else "")


@dataclass(frozen=True)
class _Group:
    ids: list[int]  # alert row ids, oldest first
    events: list[AlertEvent]  # the first few, for the message
    channel_name: str | None


def deliver_pending(sessions: sessionmaker[Session], sender: Sender, *, worker: str,
                    options: DeliveryOptions = DeliveryOptions()) -> DeliveryReport:
    report = DeliveryReport()
    groups = _claim(sessions, worker, options, report)
    for position, group in enumerate(groups):
        message = _message(group, options, sender)
        try:
            sender.post(message)
        except Throttled as exc:
            # Slack's rate limit is per app and method: nothing else goes before its Retry-After.
            report.throttled_s = exc.retry_after_s
            rest = [i for g in groups[position:] for i in g.ids]
            with sessions.begin() as session:
                session.execute(RELEASE_UNTIL, {"ids": rest, "wait_s": exc.retry_after_s, "error": str(exc)})
            report.failed += len(rest)
            break
        except Exception as exc:  # noqa: BLE001 - NotDelivered, or anything else the client raised
            if not isinstance(exc, NotDelivered):
                log.exception("posting alerts %s to Slack failed unexpectedly; they will be tried again", group.ids)
            with sessions.begin() as session:
                session.execute(RELEASE, {"ids": group.ids, "error": str(exc)[:500], "first_s": FIRST_RETRY_S,
                                          "max_s": options.retry_max_s})
            report.failed += len(group.ids)
            continue
        with sessions.begin() as session:
            session.execute(SENT, {"ids": group.ids, "first": group.ids[0]})
        report.messages += 1
        report.alerts += len(group.ids)
    with sessions() as session:
        next_in = session.execute(NEXT_DUE).scalar()
    report.next_in_s = None if next_in is None else max(0.0, float(next_in))
    return report


def _message(group: _Group, options: DeliveryOptions, sender: Sender) -> SlackMessage:
    try:
        return build_message(group.events, count=len(group.ids), channel_name=group.channel_name,
                             first_ids=options.first_ids, payload_chars=options.payload_chars,
                             window_s=options.window_s, secrets=sender.secrets)
    except Exception:  # noqa: BLE001 - the rows are claimed: a bare message is better than none
        log.exception("could not lay out alerts %s; sending them bare", group.ids)
        first = group.events[0]
        line = escape(f"{first.name} ×{len(group.ids)} (event {first.id}; wheelctl events --parent "
                      f"{first.parent_id or first.id})")
        return SlackMessage(text=line, attachments=[])


def any_due(sessions: sessionmaker[Session], claim_timeout_s: float = CLAIM_TIMEOUT_S) -> bool:
    """Whether alerts wait for a pass (for the sweeper)."""
    with sessions() as session:
        return bool(session.execute(ANY_DUE, {"claim_timeout": claim_timeout_s}).scalar())


def _claim(sessions: sessionmaker[Session], worker: str, options: DeliveryOptions,
           report: DeliveryReport) -> list[_Group]:
    with sessions.begin() as session:
        if not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": DELIVERY_LOCK}).scalar():
            report.busy = True  # another pass is claiming; whatever it leaves, the next pass takes
            return []
        by_key: dict[tuple[str, str | None], list[tuple[int, int]]] = defaultdict(list)
        for row in session.execute(DUE, {"limit": options.batch, "claim_timeout": options.claim_timeout_s}):
            by_key[(row.name, row.channel_id)].append((row.id, row.event_id))
        claimed: list[list[tuple[int, int]]] = []
        for (name, channel), rows in by_key.items():
            ids = [alert_id for alert_id, _ in rows]
            last = None
            if options.window_s > 0:
                last = session.execute(LAST_MESSAGE, {"name": name, "channel": channel,
                                                      "window": options.window_s}).scalar()
            if last is not None:
                session.execute(HOLD, {"ids": ids, "until": last + timedelta(seconds=options.window_s)})
                report.held += len(ids)
                continue
            session.execute(CLAIM, {"ids": ids, "worker": worker})
            claimed.append(rows)
        return _groups(session, claimed, options.first_ids)


def _groups(session: Session, claimed: list[list[tuple[int, int]]], first_ids: int) -> list[_Group]:
    """The claimed rows as messages, with the first few events of each (events outlive their alert
    rows: the foreign key cascades the other way)."""
    wanted = [event_id for rows in claimed for _, event_id in rows[:first_ids]]
    events = {row.id: row for row in session.execute(EVENTS, {"ids": wanted})} if wanted else {}
    groups = []
    for rows in claimed:
        firsts = [events[event_id] for _, event_id in rows[:first_ids]]
        alert_events = [AlertEvent(id=e.id, name=e.name, level=e.level, parent_id=e.parent_id,
                                   channel_id=e.channel_id, marketplace=e.marketplace or e.channel_marketplace,
                                   inbox_id=e.inbox_id, payload=e.payload or {}) for e in firsts]
        groups.append(_Group(ids=[alert_id for alert_id, _ in rows], events=alert_events,
                             channel_name=firsts[0].channel_name))
    return groups
