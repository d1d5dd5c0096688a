"""Recording what the OMS wants per (channel, SKU), newest version first (docs/contracts.md, contract 2).

A message's version is its place in the OMS's order: its inbox id (the order the bridge received
it in), or for a replay the place of the message it replays (`inbox.version`). A field takes a
value only from a version newer than the one that set it; a value overwritten before it was pushed
is `superseded`, and so is a value that arrives after a newer one, or a replay's value whose place
already set the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, or_, select, text, true, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from wheel.db.models import InboxMessage, Listing
from wheel.domain import FIELD_OF_OPERATION, InventoryItem, PriceItem, RangingItem, operation_of

# The columns each field's value lives in.
VALUE_COLUMNS = {"ranged": ("ranged",), "quantity": ("quantity",), "price": ("mrp", "selling_price")}


def _upsert(field: str):
    """Set a field's value and version, only when the version is newer than the one in place
    (parameters: channel_id, sku, ean, the field's value columns, version)."""
    table = Listing.__table__
    columns = VALUE_COLUMNS[field]
    version = table.c[field + "_version"]
    statement = insert(table).values(
        channel_id=bindparam("channel_id"), sku=bindparam("sku"), ean=bindparam("ean"),
        **{column: bindparam(column) for column in columns},
        **{version.name: bindparam("version")}, dirty=true(), dirty_since=func.now(),
    )
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.channel_id, table.c.sku],
        set_={"ean": excluded.ean, **{column: excluded[column] for column in columns},
              version.name: excluded[version.name], "attempts": 0, "dirty": true(),
              "dirty_since": func.coalesce(table.c.dirty_since, func.now()), "updated_at": func.now()},
        where=version < excluded[version.name],
    )


UPSERT = {field: _upsert(field) for field in VALUE_COLUMNS}
# Every row exists before the upserts lock them.
ENSURE_ROWS = text("INSERT INTO listings (channel_id, sku, ean) VALUES (:channel_id, :sku, :ean) ON CONFLICT DO NOTHING")

SAME_PLACE = ("the value from this message's place in the order is already in place (this is a replay); a "
              "replay never overwrites it: `wheelctl resync` pushes the current value again")


@dataclass
class Superseded:
    """Items of one message whose values a newer message replaced before they were pushed."""

    inbox_id: int  # the version (place) of the message whose items these are
    operation: str
    channel_id: str
    items: list[dict[str, Any]] = field(default_factory=list)
    # Why, when it is not that a newer value replaced it.
    reason: str | None = None


# (channel, SKU) pairs locked per statement.
LOCK_CHUNK = 1000


def apply(
    session: Session, operation: str, items_by_channel: dict[str, Sequence[RangingItem | InventoryItem | PriceItem]],
    version: int,
) -> list[Superseded]:
    """Record the items as the desired state at `version`; what they supersede, or are superseded by.

    One message's items for all its channels at once: a handful of statements, whatever its size.
    """
    name = FIELD_OF_OPERATION[operation]
    keys = sorted((channel_id, item.sku, item) for channel_id, items in items_by_channel.items() for item in items)
    if not keys:
        return []
    # Make sure every row exists (waiting for a concurrent insert of the same SKU to commit), then
    # lock them in a fixed order (no deadlocks between workers) and see what they held.
    session.execute(
        ENSURE_ROWS,
        [{"channel_id": channel_id, "sku": sku, "ean": item.ean} for channel_id, sku, item in keys],
    )
    version_col = getattr(Listing, f"{name}_version")
    settled_col = getattr(Listing, f"{name}_settled")
    # In chunks: Postgres runs out of stack on a row-value IN list of 10,000 pairs ("stack depth limit
    # exceeded"). The keys are sorted, so locking chunk after chunk keeps the fixed order.
    current = {}
    for start in range(0, len(keys), LOCK_CHUNK):
        pairs = [(channel_id, sku) for channel_id, sku, _ in keys[start:start + LOCK_CHUNK]]
        current.update(
            ((row.channel_id, row.sku), row)
            for row in session.execute(
                select(Listing.channel_id, Listing.sku, version_col.label("version"), settled_col.label("settled"),
                       Listing.ranged)
                .where(tuple_(Listing.channel_id, Listing.sku).in_(pairs))
                .order_by(Listing.channel_id, Listing.sku)
                .with_for_update()
            )
        )
    superseded: dict[tuple[int, str, str, str | None], Superseded] = {}

    def supersede(inbox_id: int, op: str, channel_id: str, item: dict, reason: str | None = None) -> None:
        group = superseded.setdefault((inbox_id, op, channel_id, reason), Superseded(inbox_id, op, channel_id, reason=reason))
        group.items.append(item)

    params = []
    for channel_id, sku, item in keys:
        row = current.get((channel_id, sku))
        if row is not None and row.version > version:
            supersede(version, operation, channel_id, item.as_dict())  # a newer value is already in place
            continue
        if row is not None and row.version == version:
            # A replay of the message (or of its place) that set the value in place: what was set
            # at this place stays; pushing it again is `wheelctl resync`'s job.
            supersede(version, operation, channel_id, item.as_dict(), SAME_PLACE)
            continue
        if row is not None and row.settled < row.version < version:
            # The value waiting to be pushed will never be: this one replaces it.
            old_op = operation if name != "ranged" else operation_of(name, row.ranged)
            supersede(row.version, old_op, channel_id, {"sku": sku})
        params.append(_params(channel_id, name, item, version))
    if params:
        session.execute(UPSERT[name], params)
    return list(superseded.values())


def _params(channel_id: str, name: str, item, version: int) -> dict[str, Any]:
    base = {"channel_id": channel_id, "sku": item.sku, "ean": item.ean, "version": version}
    if name == "ranged":
        return {**base, "ranged": item.ranged}
    if name == "quantity":
        return {**base, "quantity": item.quantity}
    return {**base, "mrp": item.price.mrp, "selling_price": item.price.selling_price}


def event_parents(session: Session, versions: Sequence[int]) -> dict[int, int | None]:
    """The oms event of the message at each version (the parent of its outcome events): the
    latest processed replay of that place, else the message itself."""
    wanted = set(versions)
    if not wanted:
        return {}
    rows = session.execute(
        select(InboxMessage.id, InboxMessage.version, InboxMessage.event_id, InboxMessage.status)
        .where(or_(InboxMessage.id.in_(list(wanted)), InboxMessage.version.in_(list(wanted))))
    )
    best: dict[int, tuple[bool, int]] = {}
    parents: dict[int, int | None] = {version: None for version in wanted}
    for row in rows:
        place = row.id if row.version is None else row.version
        if place not in wanted or row.event_id is None:
            continue
        rank = (row.status == "processed", row.id)
        if place not in best or rank > best[place]:
            best[place], parents[place] = rank, row.event_id
    return parents
