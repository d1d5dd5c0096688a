"""Settling a sync run's verdicts: the pushed versions marked settled, what the marketplace now
holds remembered, and one outcome event per message, operation and outcome (docs/contracts.md,
contracts 2 and 3)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Text, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from wheel.db.models import Channel, Listing
from wheel.domain import ItemResult, ListingUpdate, operation_of
from wheel.events import NewEvent, Recorded, record
from wheel.marketplaces.base import Call
from wheel.marketplaces.errors import TransientError
from wheel.services.desired_state import event_parents


@dataclass(frozen=True)
class Claimed:
    """A claimed listing: the values to push, and the versions they carry."""

    sku: str
    ean: str
    update: ListingUpdate
    versions: dict[str, int]  # field -> version being pushed (only fields that are due)
    ranged: bool | None


def skus_of(call: Call) -> list[str]:
    return [u.sku for u in call.updates]


@dataclass
class RetryResult:
    retry_in_s: float | None = None
    alerts: list[Recorded] = field(default_factory=list)


def retry_or_fail(sessions, channel: Channel, worker: str, by_sku: dict[str, Claimed], call: Call,
                   exc: TransientError, delays: list[float]) -> RetryResult:
    result = RetryResult()
    with sessions.begin() as session:
        rows = _locked(session, channel.id, worker, skus_of(call))
        give_up = []
        for row in rows:
            row.attempts += 1
            row.last_error = str(exc)
            if row.attempts > len(delays):
                give_up.append(row.sku)
                continue
            # Up to 20% either way, so that retries of many SKUs do not all come back at once.
            delay = max(delays[row.attempts - 1], exc.retry_after or 0) * random.uniform(0.8, 1.2)
            row.next_attempt_at = func.now() + timedelta(seconds=delay)
            row.lease_until = None
            result.retry_in_s = delay if result.retry_in_s is None else min(result.retry_in_s, delay)
        attempts = max((row.attempts for row in rows), default=0)
    if rows and result.retry_in_s is not None:
        # One warning per call and attempt, under the messages it carries.
        with sessions.begin() as session:
            log_grouped(session, channel, by_sku, [ItemResult(s, f, False) for s in skus_of(call) if s not in give_up
                                                   for f in by_sku[s].versions],
                         name_for=lambda op, ok: f"{op}/retrying", level="warning",
                         extra={"error": str(exc), "attempt": attempts, "retry_in_s": result.retry_in_s})
    if give_up:
        failed = {s: by_sku[s] for s in give_up}
        result.alerts += settle_failure(
            sessions, channel, worker, list(failed.values()), "system/processing-failed",
            {"error": f"{exc}; gave up after {attempts} attempts", "kind": "transient"},
        )
    return result


def settle_failure(sessions, channel: Channel, worker: str, claimed: list[Claimed], name: str, extra: dict) -> list[Recorded]:
    """Settle every due field of these listings as failed, with one system event per message."""
    results = [ItemResult(c.sku, f, False, extra.get("kind"), extra.get("error")) for c in claimed for f in c.versions]
    by_sku = {c.sku: c for c in claimed}
    return settle(sessions, channel, worker, by_sku, results, extra, failure_name=name)


def _locked(session: Session, channel_id: str, worker: str, skus: list[str]) -> list[Listing]:
    """The listings still leased to this worker (a lease that ran out may have passed on)."""
    # One array parameter: a (channel, SKU) IN list of a 20,000-SKU feed's SKUs was too deep for
    # Postgres to plan ("stack depth limit exceeded", found by the repricing benchmark).
    return list(session.execute(
        select(Listing).where(
            Listing.channel_id == channel_id,
            Listing.sku == any_(bindparam("skus", list(skus), type_=ARRAY(Text))),
            Listing.claimed_by == worker,
        ).order_by(Listing.sku).with_for_update()
    ).scalars())



def settle(sessions, channel: Channel, worker: str, by_sku: dict[str, Claimed], results: Sequence[ItemResult],
            extra: dict, failure_name: str | None = None) -> list[Recorded]:
    """Mark the pushed versions settled, remember what the marketplace now holds, log outcomes."""
    if not results:
        return []
    with sessions.begin() as session:
        rows = {row.sku: row for row in _locked(session, channel.id, worker, sorted({r.sku for r in results}))}
        kept = []
        for result in results:
            row, claim = rows.get(result.sku), by_sku.get(result.sku)
            if row is None or claim is None:
                continue  # no longer ours: whoever holds it now will settle it
            if result.ok:
                if result.field == "ranged":
                    row.pushed_ranged = claim.update.ranged
                if result.field in ("ranged", "quantity") and claim.update.quantity is not None:
                    row.pushed_quantity = claim.update.quantity
                if result.field == "price" and claim.update.price is not None:
                    row.pushed_mrp, row.pushed_selling_price = claim.update.price.mrp, claim.update.price.selling_price
            else:
                row.last_error = result.message or result.code
            version = claim.versions.get(result.field)
            if version is None:
                continue  # carried along (a quantity with a ranging change), not due itself
            setattr(row, f"{result.field}_settled", max(getattr(row, f"{result.field}_settled"), version))
            if getattr(row, f"{result.field}_version") > version:
                # A newer value arrived while this one was in flight: applying it logged this one
                # `superseded` (desired_state.apply), its one outcome; the newer value goes out next.
                continue
            kept.append(result)
        for row in rows.values():
            row.dirty = (row.ranged_version > row.ranged_settled or row.quantity_version > row.quantity_settled
                         or (row.price_version > row.price_settled and row.mrp is not None))
            row.lease_until, row.claimed_by = None, None
            row.updated_at = func.now()
            if not row.dirty:
                row.dirty_since, row.attempts = None, 0
        session.flush()

        def name_for(op: str, ok: bool) -> str:
            if ok:
                return f"{op}/shadowed" if extra.get("shadow") else f"{op}/succeeded"
            return failure_name or f"{op}/failed"

        return log_grouped(session, channel, by_sku, kept, name_for=name_for, extra=extra)


def log_grouped(session: Session, channel: Channel, by_sku: dict[str, Claimed], results: Sequence[ItemResult],
                 *, name_for: Callable[[str, bool], str], extra: dict, level: str | None = None) -> list[Recorded]:
    """One event per (message, operation, outcome), listing its items, under the message's oms event."""
    groups: dict[tuple[int, str, bool], list[dict]] = defaultdict(list)
    for result in results:
        claim = by_sku[result.sku]
        version = claim.versions.get(result.field)
        if version is None:
            continue
        op = operation_of(result.field, claim.update.ranged if result.field == "ranged" else claim.ranged)
        groups[(version, op, result.ok)].append(_item(claim, result))
    parents = event_parents(session, [version for version, _, _ in groups])
    recorded = []
    for (version, op, ok), items in groups.items():
        name = name_for(op, ok)
        event_level = level or ("info" if ok else "error")
        event_type = "system" if name.startswith("system/") else "domain"
        recorded.append(record(session, NewEvent(
            type=event_type, name=name, level=event_level, parent_id=parents.get(version),
            channel_id=channel.id, marketplace=channel.marketplace, inbox_id=version,
            payload={**{k: v for k, v in extra.items() if k != "shadow"}, "items": items},
        )))
    return [r for r in recorded if r.event.level == "error"]


def _item(claim: Claimed, result: ItemResult) -> dict[str, Any]:
    item: dict[str, Any] = {"sku": claim.sku, "ean": claim.ean}
    update = claim.update
    if result.field == "quantity":
        item["quantity"] = update.quantity
    if result.field == "price" and update.price is not None:
        item.update(update.price.as_dict())
    if not result.ok:
        item.update({k: v for k, v in (("code", result.code), ("error", result.message)) if v})
    return item
