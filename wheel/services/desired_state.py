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

from sqlalchemy import BigInteger, and_, bindparam, case, func, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from wheel.db.models import InboxMessage, Listing
from wheel.domain import FIELD_OF_OPERATION, InventoryItem, PriceItem, RangingItem, operation_of

# The columns each field's value lives in.
VALUE_COLUMNS = {"ranged": ("ranged",), "quantity": ("quantity",), "price": ("mrp", "selling_price")}


def _parent_event(version):
    """The oms event of the message at `version` (see event_parents: the latest processed replay of
    that place, else the message itself), as a scalar subquery."""
    inbox = InboxMessage.__table__
    return (
        select(inbox.c.event_id)
        .where(inbox.c.event_id.is_not(None),
               or_(and_(inbox.c.id == version, inbox.c.version.is_(None)), inbox.c.version == version))
        .order_by((inbox.c.status == "processed").desc(), inbox.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _apply_statement(field: str):
    """One statement for all of a message's items of one field (parameters: arrays channel_id, sku,
    ean and the field's value columns, sorted by channel and SKU; and version).

    It locks the rows in that order and reads what they held (`held`), then sets the field's value
    and version where the version is newer than the one in place (`changed`), and returns each
    given row as it was with whether it changed. Every row exists already (ENSURE_ROWS), so the lock sees it.
    """
    table = Listing.__table__
    columns = VALUE_COLUMNS[field]
    version = table.c[field + "_version"]
    given = func.unnest(
        *(bindparam(name, type_=ARRAY(table.c[name].type)) for name in ("channel_id", "sku", "ean", *columns)),
    ).table_valued("channel_id", "sku", "ean", *columns).render_derived(name="given")
    held = (
        select(table.c.channel_id, table.c.sku, version.label("version"),
               table.c[field + "_settled"].label("settled"), table.c.ranged)
        .join_from(table, given, (table.c.channel_id == given.c.channel_id) & (table.c.sku == given.c.sku))
        .order_by(table.c.channel_id, table.c.sku)
        .with_for_update(of=table)
        .cte("held")
    )
    # Reading `held` for each row makes its lock come before the row's update (CTEs share one
    # snapshot, and a row updated by this statement could no longer be locked by it).
    rows = (
        select(given.c.channel_id, given.c.sku, given.c.ean, *(given.c[name] for name in columns),
               bindparam("version", type_=BigInteger), true(), func.now())
        .join_from(given, held, (held.c.channel_id == given.c.channel_id) & (held.c.sku == given.c.sku), isouter=True)
        .order_by(given.c.channel_id, given.c.sku)
    )
    statement = insert(table).from_select(
        ["channel_id", "sku", "ean", *columns, version.name, "dirty", "dirty_since"], rows)
    excluded = statement.excluded
    changed = statement.on_conflict_do_update(
        index_elements=[table.c.channel_id, table.c.sku],
        set_={"ean": excluded.ean, **{column: excluded[column] for column in columns},
              version.name: excluded[version.name], "attempts": 0, "dirty": true(),
              "dirty_since": func.coalesce(table.c.dirty_since, func.now()), "updated_at": func.now()},
        where=version < excluded[version.name],
    ).returning(table.c.channel_id, table.c.sku).cte("changed")
    replaced = changed.c.sku.is_not(None) & (held.c.settled < held.c.version)
    # Every given row (one that vanished after ENSURE_ROWS is inserted again: nothing held it), and
    # for a value waiting to be pushed that this one replaced, the oms event of its message.
    return (
        select(given.c.channel_id, given.c.sku, held.c.version, held.c.settled, held.c.ranged,
               changed.c.sku.is_not(None).label("changed"),
               case((replaced, _parent_event(held.c.version)), else_=None).label("parent_event_id"))
        .select_from(given)
        .join(held, (held.c.channel_id == given.c.channel_id) & (held.c.sku == given.c.sku), isouter=True)
        .join(changed, (changed.c.channel_id == given.c.channel_id) & (changed.c.sku == given.c.sku), isouter=True)
    )


APPLY = {field: _apply_statement(field) for field in VALUE_COLUMNS}


def _ensure_rows():
    """Insert the rows that are missing, in one statement (parameters: arrays channel_id, sku, ean)."""
    table = Listing.__table__
    given = func.unnest(
        *(bindparam(name, type_=ARRAY(table.c[name].type)) for name in ("channel_id", "sku", "ean")),
    ).table_valued("channel_id", "sku", "ean").render_derived(name="given")
    rows = select(given.c.channel_id, given.c.sku, given.c.ean).order_by(given.c.channel_id, given.c.sku)
    return insert(table).from_select(["channel_id", "sku", "ean"], rows).on_conflict_do_nothing()


# Every row exists before APPLY locks them (a concurrent insert of the same SKU is waited for, and
# seen by the next statement).
ENSURE_ROWS = _ensure_rows()

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
    # The oms event of the message whose items these are, when it is not the one being applied.
    parent_event_id: int | None = None




def apply(
    session: Session, operation: str, items_by_channel: dict[str, Sequence[RangingItem | InventoryItem | PriceItem]],
    version: int,
) -> list[Superseded]:
    """Record the items as the desired state at `version`; what they supersede, or are superseded by.

    One message's items for all its channels at once: two statements, whatever its size.
    """
    name = FIELD_OF_OPERATION[operation]
    keys = sorted(((channel_id, item.sku, item) for channel_id, items in items_by_channel.items() for item in items),
                  key=lambda key: key[:2])
    if not keys:
        return []
    given = {"channel_id": [k[0] for k in keys], "sku": [k[1] for k in keys], "ean": [k[2].ean for k in keys]}
    # Make sure every row exists (waiting for a concurrent insert of the same SKU to commit), then
    # in one statement lock them in a fixed order (no deadlocks between workers), see what they
    # held, and set the newer values.
    connection = session.connection()  # Core statements: the ORM's execute would only add its overhead
    connection.execute(ENSURE_ROWS, given)
    values = {column: [_value(column, item) for _, _, item in keys] for column in VALUE_COLUMNS[name]}
    rows = {(row.channel_id, row.sku): row for row in connection.execute(APPLY[name], {**given, **values, "version": version})}
    superseded: dict[tuple[int, str, str, str | None], Superseded] = {}

    def supersede(inbox_id: int, op: str, channel_id: str, item: dict, reason: str | None = None,
                  parent_event_id: int | None = None) -> None:
        group = superseded.setdefault((inbox_id, op, channel_id, reason),
                                      Superseded(inbox_id, op, channel_id, reason=reason, parent_event_id=parent_event_id))
        group.items.append(item)

    for channel_id, sku, item in keys:
        row = rows[(channel_id, sku)]
        if row.version is None:
            continue  # a new row: nothing was in place
        if not row.changed and row.version > version:
            supersede(version, operation, channel_id, item.as_dict())  # a newer value is already in place
        elif not row.changed:
            # A replay of the message (or of its place) that set the value in place: what was set
            # at this place stays; pushing it again is `wheelctl resync`'s job.
            supersede(version, operation, channel_id, item.as_dict(), SAME_PLACE)
        elif row.settled < row.version:
            # The value waiting to be pushed will never be: this one replaces it.
            old_op = operation if name != "ranged" else operation_of(name, row.ranged)
            supersede(row.version, old_op, channel_id, {"sku": sku}, parent_event_id=row.parent_event_id)
    return list(superseded.values())


def _value(column: str, item) -> Any:
    if column == "ranged":
        return item.ranged
    if column == "quantity":
        return item.quantity
    return item.price.mrp if column == "mrp" else item.price.selling_price


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
