"""A channel that cannot push at all (credentials refused or missing, a setting wrong): its
values wait, dirty, and one alert an hour says so (docs/contracts.md, contract 2)."""

from __future__ import annotations

import hashlib

from sqlalchemy import text

from wheel.db.models import Channel
from wheel.events import NewEvent, Recorded, record
from wheel.marketplaces.errors import AuthError

# A channel whose credentials or settings are refused is tried again this often; its alert is
# raised once an hour at most while it stays blocked.
CHANNEL_BLOCKED_RETRY_S = 60.0

RELEASE_BLOCKED = text(
    "UPDATE listings SET lease_until = NULL, claimed_by = NULL, "
    "next_attempt_at = now() + make_interval(secs => :wait) "
    "WHERE channel_id = :c AND claimed_by = :w AND sku = ANY(:skus)"
)
POSTPONE_DIRTY = text(
    "UPDATE listings SET next_attempt_at = GREATEST(next_attempt_at, now() + make_interval(secs => :wait)) "
    "WHERE channel_id = :c AND dirty AND (lease_until IS NULL OR lease_until < now()) RETURNING sku"
)
CURRENT_HOUR = text("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDDHH24')")


def block_channel(sessions, channel: Channel, exc: Exception, released: set[str], *, worker: str | None = None
                   ) -> list[Recorded]:
    """The channel cannot push at all (credentials refused or missing, a setting wrong): leave
    every dirty listing dirty, release the claimed ones, come back later, and say so once."""
    kind = "auth" if isinstance(exc, AuthError) else "configuration"
    error = str(exc) or type(exc).__name__
    with sessions.begin() as session:
        if released and worker is not None:
            session.execute(
                RELEASE_BLOCKED,
                {"wait": CHANNEL_BLOCKED_RETRY_S, "c": channel.id, "w": worker, "skus": sorted(released)},
            )
        waiting = session.execute(
            POSTPONE_DIRTY,
            {"wait": CHANNEL_BLOCKED_RETRY_S, "c": channel.id},
        ).all()
        hour = session.scalar(CURRENT_HOUR)
        fingerprint = hashlib.sha1(error.encode()).hexdigest()[:12]
        recorded = record(session, NewEvent(
            type="system", name="system/channel-blocked", level="error", channel_id=channel.id,
            marketplace=channel.marketplace,
            payload={"error": error, "kind": kind, "waiting": len(waiting), "retry_in_s": CHANNEL_BLOCKED_RETRY_S,
                     "fix": (f"fix the channel's credentials ({channel.credentials_ref})" if kind == "auth"
                             else "fix the channel's settings (wheelctl channels list)")
                            + "; the waiting values go out by themselves within a minute"},
            dedupe_key=f"channel-blocked:{channel.id}:{kind}:{fingerprint}:{hour}",
        ))
    return [recorded] if recorded.created else []
