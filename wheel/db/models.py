"""The schema, as SQLAlchemy models. Alembic migrations create it; tests check they agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MARKETPLACES = ("amazon", "flipkart", "tatacliq")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Channel(Base):
    """One seller account on one marketplace, named by the OMS (UA, UB, ...)."""

    __tablename__ = "channels"
    __table_args__ = (
        CheckConstraint(
            "marketplace IN ('amazon', 'flipkart', 'tatacliq')", name="known_marketplace"
        ),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    marketplace: Mapped[str] = mapped_column(Text, nullable=False)
    base_url: Mapped[str] = mapped_column(Text, nullable=False)
    # Names a secret (environment variable WHEEL_SECRET_<REF> or a file in the secrets dir);
    # the secret itself is never stored here.
    credentials_ref: Mapped[str] = mapped_column(Text, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    # Seconds to wait before each retry of a transiently failing push; null: the default.
    retry_delays_s: Mapped[list[float] | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class InboxMessage(Base):
    """Every message taken from an OMS queue, raw, keyed by its transport message id."""

    __tablename__ = "inbox"
    __table_args__ = (
        CheckConstraint("status IN ('received', 'processed', 'failed')", name="known_status"),
        Index(None, "status", "received_at"),
        Index(None, "body_sha256"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    queue: Mapped[str] = mapped_column(Text, nullable=False)
    transport_message_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    body_sha256: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    headers: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    received_at: Mapped[datetime] = _now()
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'received'"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    # The `oms` event that logs this message: the parent of every event it causes.
    event_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Last time a task was sent for it; the sweeper re-sends when this grows old.
    enqueued_at: Mapped[datetime] = _now()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """The operational log the ops team reads (Metabase) and alerts link to."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("type IN ('oms', 'domain', 'system')", name="known_type"),
        CheckConstraint("level IN ('debug', 'info', 'warning', 'error')", name="known_level"),
        Index(None, "created_at"),
        Index(None, "name", "created_at"),
        Index(None, "channel_id", "created_at"),
        Index(None, "type", "created_at"),
        Index(None, "parent_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="SET NULL"), nullable=True
    )
    type: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    level: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'info'"))
    channel_id: Mapped[str | None] = mapped_column(Text)
    marketplace: Mapped[str | None] = mapped_column(Text)
    inbox_id: Mapped[int | None] = mapped_column(BigInteger)
    # Makes writing an event idempotent: a redelivered task writes the same key, and nothing.
    dedupe_key: Mapped[str | None] = mapped_column(Text, unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _now()


class Push(Base):
    """One OMS message's items for one channel: work that must reach the marketplace."""

    __tablename__ = "pushes"
    __table_args__ = (
        UniqueConstraint("inbox_id", "channel_id", "operation"),
        CheckConstraint(
            "status IN ('pending', 'in_progress', 'succeeded', 'failed')", name="known_status"
        ),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    inbox_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("inbox.id", ondelete="CASCADE"), nullable=False
    )
    channel_id: Mapped[str] = mapped_column(Text, ForeignKey("channels.id"), nullable=False)
    operation: Mapped[str] = mapped_column(Text, nullable=False)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = _now()
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(Text)
    enqueued_at: Mapped[datetime] = _now()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
