"""Every Postgres advisory lock Wheel takes: its key and its statements, in one place, so no two
locks share a key by accident (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS).

Keys are 64-bit: the integer ones start with 0x77686C ("whl"), then a byte naming the lock.
"""

from __future__ import annotations

from sqlalchemy import text

# One publisher at a time (a transaction-level lock): the OMS gets an order before its cancellation.
PUBLISHER_LOCK = 0x77686C0B  # "whl" + publisher
TRY_XACT_LOCK = text("SELECT pg_try_advisory_xact_lock(:k)")
# One roll-up fold at a time (a transaction-level lock, wheel/services/rollups.py): a second run
# finds the days folded, or skips while the first folds them.
ROLLUP_LOCK = 0x77686C0C  # "whl" + roll-up

# One pull per schedule (channel, job) at a time: a session-level lock, held on its own connection
# for the whole pull, so a killed worker's connection drops and frees it.
TRY_LOCK = text("SELECT pg_try_advisory_lock(:k)")
UNLOCK = text("SELECT pg_advisory_unlock(:k)")


def schedule_lock(schedule_id: int) -> int:
    """The key of a schedule's pull lock."""
    return (0x77686C00 << 24) | schedule_id


# Orders stored at once by the orders and cancellations pulls must see each other: each order id
# is locked for the transaction (keys `order:<channel>:<order id>`), in one order, so no deadlock.
LOCK_ORDER_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(hashtext(k))) FROM "
    "(SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS sorted"
)


def order_key(channel_id: str, order_id: str) -> str:
    """The lock key (text, hashed by Postgres) of one order of one channel."""
    return f"order:{channel_id}:{order_id}"
