"""The marketplace look-ups cache in Postgres (table marketplace_lookups): what one worker looked
up (Flipkart's FSN, location ids and listing status; Amazon's product type) serves every worker,
and the next runs, until it expires. The adapters see it as a wheel.marketplaces.lookups.LookupCache.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from wheel.marketplaces.lookups import DEFAULT_TTL_S

GET = text(
    "SELECT sku, value FROM marketplace_lookups "
    "WHERE channel_id = :c AND kind = :k AND sku = ANY(:skus) AND expires_at > now()"
)
PUT = text(
    """
    INSERT INTO marketplace_lookups (channel_id, kind, sku, value, fetched_at, expires_at)
    SELECT :c, :k, item.sku, item.value, now(), now() + make_interval(secs => :ttl)
      FROM jsonb_each(CAST(:values AS jsonb)) AS item(sku, value)
    ON CONFLICT (channel_id, kind, sku)
    DO UPDATE SET value = excluded.value, fetched_at = excluded.fetched_at, expires_at = excluded.expires_at
    """
)
INVALIDATE = text("DELETE FROM marketplace_lookups WHERE channel_id = :c AND kind = :k AND sku = ANY(:skus)")


class PostgresLookupCache:
    def __init__(self, sessions: sessionmaker[Session], ttl_s: float = DEFAULT_TTL_S):
        self._sessions = sessions
        self.ttl_s = float(ttl_s)

    def get_many(self, channel_id: str, kind: str, skus: Sequence[str]) -> dict[str, Any]:
        if not skus:
            return {}
        with self._sessions() as session:
            rows = session.execute(GET, {"c": channel_id, "k": kind, "skus": list(dict.fromkeys(skus))}).all()
        return {sku: value for sku, value in rows}

    def put_many(self, channel_id: str, kind: str, values: Mapping[str, Any]) -> None:
        if not values:
            return
        with self._sessions.begin() as session:
            session.execute(PUT, {"c": channel_id, "k": kind, "ttl": self.ttl_s, "values": json.dumps(dict(values))})

    def invalidate(self, channel_id: str, kind: str, skus: Iterable[str]) -> None:
        skus = list(dict.fromkeys(skus))
        if not skus:
            return
        with self._sessions.begin() as session:
            session.execute(INVALIDATE, {"c": channel_id, "k": kind, "skus": skus})
