"""Submissions in flight (Amazon feeds): the marketplace judges them later, so their listings
pass from the sync run to the submission, and a poll task settles them once it has ended
(docs/contracts.md, contract 2)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Channel, Submission
from wheel.domain import ListingUpdate, Price
from wheel.events import NewEvent, Recorded, record
from wheel.marketplaces import UnknownMarketplace
from wheel.marketplaces.base import Call, QuotaWait, Submitted
from wheel.marketplaces.errors import MarketplaceError, TransientError
from wheel.services.channels import AdapterLookup, GateLookup, channel_config
from wheel.services.sync_lease import Lease
from wheel.services.sync_settle import Claimed, retry_or_fail, settle

log = logging.getLogger("wheel.sync")

# A submission's listings stay claimed this long without a poll; each poll renews it. If every
# poll stops (the worker fleet is down for a day), the SKUs are claimed again and pushed anew.
SUBMISSION_LEASE_S = 24 * 3600

# The submitted SKUs pass from the worker to the submission (`m` names it).
HAND_TO_SUBMISSION = text(
    "UPDATE listings SET claimed_by = :m, lease_until = now() + make_interval(secs => :lease) "
    "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus)"
)
RENEW_SUBMITTED = text(
    "UPDATE listings SET lease_until = now() + make_interval(secs => :lease) WHERE channel_id = :c AND claimed_by = :m"
)
RELEASE_SUBMITTED = text(
    "UPDATE listings SET claimed_by = NULL, lease_until = NULL WHERE channel_id = :c AND claimed_by = :m"
)
MARK_WARNED = text("UPDATE submissions SET warned = true WHERE id = :id")
MARK_FINISHED = text(
    "UPDATE submissions SET status = 'finished', outcome = :o, finished_at = now(), polls = polls + 1 WHERE id = :id"
)
POLL_LATER = text(
    "UPDATE submissions SET polls = polls + 1, last_error = :e, "
    "next_poll_at = now() + make_interval(secs => :wait) WHERE id = :id"
)
# How long this channel's feeds take, from submission to DONE: a moving average in which the newest
# feed weighs this much (the first one sets it), so one odd feed moves it, and a lasting change at
# Amazon takes over within a few feeds.
SUBMISSION_TIMING_WEIGHT = 0.3
RECORD_TIMING = text(
    "INSERT INTO submission_timings (channel_id, processing_s, last_s, samples) VALUES (:c, :s, :s, 1) "
    "ON CONFLICT (channel_id) DO UPDATE SET "
    "processing_s = submission_timings.processing_s + :w * (EXCLUDED.last_s - submission_timings.processing_s), "
    "last_s = EXCLUDED.last_s, samples = submission_timings.samples + 1, updated_at = now()"
)
PROCESSING_ESTIMATE = text("SELECT processing_s FROM submission_timings WHERE channel_id = :c")
# Submissions whose poll is overdue (its task was lost), each claimed for one more deadline.
CLAIM_OVERDUE = text(
    "UPDATE submissions s SET next_poll_at = now() + make_interval(secs => :deadline) FROM channels c "
    "WHERE c.id = s.channel_id AND s.status = 'in_progress' "
    "AND s.next_poll_at < now() - make_interval(secs => :deadline) "
    "RETURNING s.channel_id, c.marketplace, s.reference"
)


def record_submission(sessions, channel: Channel, lease: Lease, by_sku: dict[str, Claimed], submitted: Submitted,
                       first_poll_s: float) -> None:
    """Hand the submitted SKUs from this worker to the submission, in one transaction: the rows
    say which feed carries them (claimed_by), and no one claims them until it is settled."""
    marker = f"{channel.marketplace}-feed:{submitted.reference}"
    skus = sorted({u.sku for u in submitted.sent})
    items = [_claim_json(by_sku[sku]) for sku in skus if sku in by_sku]
    with sessions.begin() as session:
        session.execute(
            HAND_TO_SUBMISSION,
            {"m": marker, "lease": SUBMISSION_LEASE_S, "c": channel.id, "w": lease.worker, "skus": skus},
        )
        session.add(Submission(channel_id=channel.id, reference=submitted.reference, worker=marker, items=items,
                               state=dict(submitted.state),
                               next_poll_at=func.now() + timedelta(seconds=first_poll_s)))
        record(session, NewEvent(
            type="domain", name="feed/submitted", level="info", channel_id=channel.id, marketplace=channel.marketplace,
            payload={"feed_id": submitted.reference, "skus": len(skus), "first_poll_in_s": first_poll_s},
            dedupe_key=f"submission:{channel.id}:{submitted.reference}:submitted",
        ))
    lease.drop(set(skus))


def _claim_json(claim: Claimed) -> dict[str, Any]:
    update = claim.update
    return {"sku": claim.sku, "ean": claim.ean, "versions": claim.versions, "ranged": claim.ranged,
            "update": {"ranged": update.ranged, "quantity": update.quantity, "listed": update.listed,
                       "mrp": None if update.price is None else str(update.price.mrp),
                       "selling_price": None if update.price is None else str(update.price.selling_price)}}


def _claim_from_json(item: dict[str, Any]) -> Claimed:
    values = item["update"]
    price = (Price(Decimal(values["mrp"]), Decimal(values["selling_price"]))
             if values.get("mrp") is not None else None)
    update = ListingUpdate(sku=item["sku"], ean=item["ean"], ranged=values.get("ranged"),
                           quantity=values.get("quantity"), price=price, listed=values.get("listed", True))
    return Claimed(item["sku"], item["ean"], update, {k: int(v) for k, v in item["versions"].items()}, item.get("ranged"))


@dataclass
class PollResult:
    channel_id: str
    reference: str
    marketplace: str | None = None
    status: str = "skipped"  # skipped | waiting | finished
    poll_in_s: float | None = None
    alerts: list[Recorded] = field(default_factory=list)


def poll_submission(
    sessions: sessionmaker[Session],
    channel_id: str,
    reference: str,
    *,
    adapters: AdapterLookup,
    gate_for: GateLookup,
    default_retry_delays_s: Sequence[float],
    slow_after_s: float = 900.0,
    first_poll_s: float = 15.0,
    max_poll_s: float = 120.0,
) -> PollResult:
    """Ask the marketplace where a submission stands; settle its verdicts once it has ended.

    Runs as its own task, again and again (by default 15 s doubling to 2 minutes), so no worker waits on a
    feed. A failure to poll (throttled, a timeout, the credentials) is no verdict: it polls again.
    """
    outcome = PollResult(channel_id, reference)
    with sessions() as session:
        row = session.execute(select(Submission).where(Submission.channel_id == channel_id,
                                                       Submission.reference == reference)).scalar_one_or_none()
        channel = session.get(Channel, channel_id)
        if row is None or row.status != "in_progress" or channel is None:
            return outcome
        session.expunge_all()
    outcome.marketplace = channel.marketplace
    claims = [_claim_from_json(item) for item in row.items]
    by_sku = {c.sku: c for c in claims}
    submitted = Submitted(reference=reference, sent=tuple(c.update for c in claims), state=row.state or {})
    pause = min(max_poll_s, first_poll_s * 2 ** min(row.polls, 8))
    try:
        adapter = adapters(channel_config(channel))
        polled = adapter.poll(submitted, gate_for(channel, adapter))
    except QuotaWait as wait:
        return _poll_later(sessions, row, outcome, max(pause, wait.retry_in_s), None)
    except (MarketplaceError, UnknownMarketplace) as exc:
        # Not a verdict on the feed: Amazon still holds it. Poll again; say so if it goes on.
        return _poll_later(sessions, row, outcome, pause, str(exc) or type(exc).__name__)
    if not polled.finished:
        outcome = _poll_later(sessions, row, outcome, pause, None)
        waiting_s = (datetime.now(timezone.utc) - row.submitted_at).total_seconds()
        if not row.warned and waiting_s > slow_after_s:
            with sessions.begin() as session:
                session.execute(MARK_WARNED, {"id": row.id})
                record(session, NewEvent(
                    type="domain", name="feed/slow", level="warning", channel_id=channel.id,
                    marketplace=channel.marketplace,
                    payload={"feed_id": reference, "status": polled.status, "skus": len(claims),
                             "waiting_s": round(waiting_s),
                             "note": "still processing at Amazon; polled until it ends, never submitted twice"},
                    dedupe_key=f"submission:{channel.id}:{reference}:slow",
                ))
        return outcome
    outcome.status = "finished"
    outcome.alerts += settle(sessions, channel, row.worker, by_sku, list(polled.results),
                              {"feed_id": reference, "feed_status": polled.status})
    if polled.doubtful:
        doubt = Call("createFeed", tuple(polled.doubtful), frozenset().union(*(u.fields for u in polled.doubtful)),
                     kind="feed")
        retry = retry_or_fail(sessions, channel, row.worker, by_sku, doubt, TransientError(
            f"Amazon feed {reference} ended {polled.status} without saying whether these were applied"),
            list(channel.retry_delays_s or default_retry_delays_s))
        outcome.alerts += retry.alerts
    with sessions.begin() as session:
        # Whatever the verdicts left (say, a SKU the report forgot) is released, not held for a day.
        session.execute(RELEASE_SUBMITTED, {"c": channel.id, "m": row.worker})
        session.execute(MARK_FINISHED, {"o": polled.status, "id": row.id})
        if polled.status == "DONE":
            # What the next choice between PATCHes and a feed counts on (sync.py, _conditions): by
            # Amazon's clock when its answer says (createdTime to processingEndTime), else from our
            # submission to this poll, which overstates it by up to one poll interval.
            took = polled.processing_s
            if took is None:
                took = (datetime.now(timezone.utc) - row.submitted_at).total_seconds()
            session.execute(RECORD_TIMING, {"c": channel.id, "s": max(0.0, took), "w": SUBMISSION_TIMING_WEIGHT})
            log.info("feed %s of %s: DONE after %.0f s of processing", reference, channel.id, took)
    return outcome


def _poll_later(sessions, row: Submission, outcome: PollResult, wait_s: float, error: str | None) -> PollResult:
    with sessions.begin() as session:
        session.execute(POLL_LATER, {"e": error, "wait": wait_s, "id": row.id})
        session.execute(
            RENEW_SUBMITTED,
            {"lease": SUBMISSION_LEASE_S, "c": row.channel_id, "m": row.worker})
    outcome.status, outcome.poll_in_s = "waiting", wait_s
    if error:
        log.warning("feed %s of %s: polling failed (%s); polling again in %.0fs", row.reference, row.channel_id,
                    error, wait_s)
    return outcome


def processing_estimate(sessions, channel_id: str) -> float | None:
    """The channel's moving average of its feeds' time to DONE, in seconds (None: no feed finished yet)."""
    with sessions() as session:
        return session.execute(PROCESSING_ESTIMATE, {"c": channel_id}).scalar_one_or_none()


def stale_submissions(sessions, *, deadline_s: float) -> list[tuple[str, str, str]]:
    """(channel, marketplace, reference) of submissions whose poll is overdue (its task was lost)."""
    with sessions.begin() as session:
        rows = session.execute(CLAIM_OVERDUE, {"deadline": deadline_s}).all()
    return [(r.channel_id, r.marketplace, r.reference) for r in rows]
