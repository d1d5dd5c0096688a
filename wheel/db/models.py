"""The schema, as SQLAlchemy models. Alembic migrations create it; tests check they agree."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Text,
    UniqueConstraint,
    column,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wheel.marketplaces import MARKETPLACES

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Channel(Base):
    """One seller account on one marketplace, named by the OMS (UA, UB, ...)."""

    __tablename__ = "channels"
    __table_args__ = (
        CheckConstraint(column("marketplace").in_(MARKETPLACES), name="known_marketplace"),
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
    # Marketplace-specific settings (Amazon: seller_id, lwa_url; Flipkart: location_id). No secrets.
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    # Pushed quantity = min(max_quantity, max(0, quantity - buffer_stock)).
    buffer_stock: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    max_quantity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Shadow mode: compute and record every call, send nothing.
    shadow: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # Every documented quota times this; and per-operation overrides {"op": [rate per s, burst]}.
    quota_scale: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("1"))
    quotas: Mapped[dict[str, list[float]] | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class InboxMessage(Base):
    """Every message taken from an OMS queue, raw, keyed by its queue and transport message id."""

    __tablename__ = "inbox"
    __table_args__ = (
        CheckConstraint("status IN ('received', 'processed', 'failed')", name="known_status"),
        # Per queue: an OMS may reuse its own document ids across its queues.
        UniqueConstraint("queue", "transport_message_id"),
        Index(None, "status", "received_at"),
        Index(None, "body_sha256"),
        Index(None, "version", postgresql_where=text("version IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The message's place in the OMS's order, the version of the values it sets: null for a message
    # from the OMS (its place is its id, the order it arrived in); a replay keeps the place of the
    # message it replays, so an old value replayed never overwrites a newer one.
    version: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    queue: Mapped[str] = mapped_column(Text, nullable=False)
    transport_message_id: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    body_sha256: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    headers: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    received_at: Mapped[datetime] = _now()
    # Set by the bridge just before it acknowledges the message to its broker. A redelivery of a
    # message sent without an id is matched only to a row still without it (see inbox.py).
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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
        # The SKUs a payload names (migration a9c8e7f6d5b4 defines the function): `wheelctl events --sku`.
        Index("ix_events_skus", func.event_skus(text("payload")), postgresql_using="gin"),
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


class Listing(Base):
    """The desired state of one SKU on one channel, and what was last pushed (contract 2).

    Stored with fillfactor 80 (migration d2e3f4a5b6c7): the lease writes stay on their page and
    touch no index.

    Each field carries the version (the inbox id: arrival order) of the OMS message that set it,
    and the version whose push has settled (succeeded or failed for good). A field needs pushing
    while its version is above its settled version; a worker pushes the current value, so an
    update superseded before its push is never sent.
    """

    __tablename__ = "listings"
    __table_args__ = (
        Index("ix_listings_dirty", "channel_id", "next_attempt_at", postgresql_where=text("dirty")),
        # A sync run's claim: the channel's longest-waiting dirty listings, in order (wheel/services/sync.py).
        Index("ix_listings_claim", "channel_id", "dirty_since", "sku", postgresql_where=text("dirty")),
    )

    channel_id: Mapped[str] = mapped_column(Text, ForeignKey("channels.id"), primary_key=True)
    sku: Mapped[str] = mapped_column(Text, primary_key=True)
    ean: Mapped[str] = mapped_column(Text, nullable=False)
    ranged: Mapped[bool | None] = mapped_column(Boolean)
    ranged_version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    ranged_settled: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    quantity: Mapped[int | None] = mapped_column(Integer)
    quantity_version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    quantity_settled: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    mrp: Mapped[Any | None] = mapped_column(Numeric(12, 2))
    selling_price: Mapped[Any | None] = mapped_column(Numeric(12, 2))
    price_version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    price_settled: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    # What the marketplace holds, as far as Wheel knows (set on a successful push).
    pushed_ranged: Mapped[bool | None] = mapped_column(Boolean)
    pushed_quantity: Mapped[int | None] = mapped_column(Integer)
    pushed_mrp: Mapped[Any | None] = mapped_column(Numeric(12, 2))
    pushed_selling_price: Mapped[Any | None] = mapped_column(Numeric(12, 2))
    dirty: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    dirty_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = _now()
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = _now()


class Schedule(Base):
    """One scheduled job (pull orders, pull cancellations) for one channel, read by beat.

    Beat fires a run when `next_run_at` has passed and moves it on by the cron expression; the
    pull's progress lives here too: `watermark` (everything before it is stored) and `cursor`
    (a pull in progress, resumed after a crash or a quota wait).
    """

    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint("job IN ('orders', 'cancellations')", name="known_job"),
        Index(None, "channel_id", "job", unique=True),
        Index(None, "next_run_at", postgresql_where=text("enabled")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    channel_id: Mapped[str] = mapped_column(Text, ForeignKey("channels.id"), nullable=False)
    job: Mapped[str] = mapped_column(Text, nullable=False)
    cron: Mapped[str] = mapped_column(Text, nullable=False)
    # The IANA zone the cron expression is read in ('0 9 * * *' in Asia/Kolkata is 03:30 UTC);
    # next_run_at, like every stored time, is UTC.
    timezone: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'UTC'"))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    watermark: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_outcome: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = _now()


class JobRun(Base):
    """One run of a schedule. (schedule, due time) is unique, so two beats cannot both fire it."""

    __tablename__ = "job_runs"
    __table_args__ = (
        CheckConstraint("status IN ('due', 'running', 'succeeded', 'failed')", name="known_status"),
        CheckConstraint("trigger IN ('cron', 'catch-up', 'manual')", name="known_trigger"),
        Index(None, "schedule_id", "due_at", unique=True),
        Index(None, "status", "enqueued_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    schedule_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("schedules.id", ondelete="CASCADE"), nullable=False)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    trigger: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'cron'"))
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'due'"))
    created_at: Mapped[datetime] = _now()
    enqueued_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(Text)
    orders: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    cancellations: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    calls: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)


class Order(Base):
    """A marketplace order, stored once per (channel, marketplace order id)."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("status IN ('ready', 'sent', 'failed')", name="known_status"),
        Index(None, "channel_id", "order_id", unique=True),
        Index(None, "status", "received_at"),
        # Sent orders whose customer data is still held: what the retention purge looks at.
        Index("ix_orders_unscrubbed", "received_at", postgresql_where=text("scrubbed_at IS NULL AND status = 'sent'")),
        # The events purge keeps an unsent order's event (wheel/services/retention.py).
        Index("ix_orders_unsent_event", "event_id", postgresql_where=text("status <> 'sent'")),
        # reports.orders_per_day, by an index-only scan.
        Index("ix_orders_channel_received", "channel_id", "received_at", postgresql_include=["status", "lines", "total"]),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    channel_id: Mapped[str] = mapped_column(Text, ForeignKey("channels.id"), nullable=False)
    order_id: Mapped[str] = mapped_column(Text, nullable=False)
    # ready: its OMS document waits in the outbox; sent: published; failed: cannot be mapped.
    status: Mapped[str] = mapped_column(Text, nullable=False)
    # The domain order (JSON, money as strings), and what the marketplace sent.
    document: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    raw: Mapped[Any] = mapped_column(JSONB)
    failure: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    total: Mapped[Any | None] = mapped_column(Numeric(14, 2))
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = _now()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the retention purge removed the customer (raw, and the addresses in document); the row,
    # its lines and its total stay (wheel/services/retention.py).
    scrubbed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CancelledLine(Base):
    """One cancelled line of an order (line_id '*' when the marketplace names no lines): the
    ledger that makes a cancellation seen twice, or seen again with more lines, send only what
    is new."""

    __tablename__ = "cancellations"
    __table_args__ = (
        CheckConstraint("status IN ('held', 'expired', 'ready', 'sent')", name="known_status"),
        Index(None, "channel_id", "order_id", "line_id", unique=True),
        Index(None, "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    channel_id: Mapped[str] = mapped_column(Text, ForeignKey("channels.id"), nullable=False)
    order_id: Mapped[str] = mapped_column(Text, nullable=False)
    line_id: Mapped[str] = mapped_column(Text, nullable=False)
    sku: Mapped[str] = mapped_column(Text, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    reason_code: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    reason_text: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    whole_order: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # held: its order has not been received yet; expired: held too long (said, but it still follows
    # the order if the order comes); ready: in the outbox; sent: published.
    status: Mapped[str] = mapped_column(Text, nullable=False)
    outbox_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = _now()


class OutboxMessage(Base):
    """An OMS document waiting to be put on an OMS queue (contract 4). Written in the same
    transaction as its order; marked sent only after the put is committed."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint("kind IN ('order', 'cancellation')", name="known_kind"),
        Index("ix_outbox_pending", "id", postgresql_where=text("sent_at IS NULL")),
        # Sent rows by when they were sent: what the retention purge deletes, oldest first.
        Index("ix_outbox_sent_at", "sent_at", postgresql_where=text("sent_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    channel_id: Mapped[str] = mapped_column(Text, nullable=False)
    order_id: Mapped[str] = mapped_column(Text, nullable=False)
    queue: Mapped[str] = mapped_column(Text, nullable=False)
    message_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()
    enqueued_at: Mapped[datetime] = _now()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)


class MarketplaceLookup(Base):
    """What a marketplace told about a SKU that a push needs and the OMS does not send (Flipkart's
    FSN, location ids and listing status; Amazon's product type), shared by every worker and kept
    across runs until `expires_at`. A refusal that may come of a stale entry deletes it."""

    __tablename__ = "marketplace_lookups"
    __table_args__ = (Index(None, "expires_at"),)

    channel_id: Mapped[str] = mapped_column(Text, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(Text, primary_key=True)
    sku: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB, nullable=False)
    fetched_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SubmissionTiming(Base):
    """How long a channel's bulk submissions (Amazon feeds) take from submission to DONE: a moving
    average (`processing_s`, the newest feed weighing SUBMISSION_TIMING_WEIGHT in
    wheel/services/submissions.py), the last one seen and how many were counted. The push reads it
    to choose between PATCHes and a feed."""

    __tablename__ = "submission_timings"

    channel_id: Mapped[str] = mapped_column(Text, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    processing_s: Mapped[float] = mapped_column(Float, nullable=False)
    last_s: Mapped[float] = mapped_column(Float, nullable=False)
    samples: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = _now()


class Submission(Base):
    """A push the marketplace works on after it answers (an Amazon JSON_LISTINGS_FEED), in flight.

    Its listings stay claimed by `worker` (`amazon-feed:<feed id>`, on the rows' claimed_by) until
    its verdicts are settled, so no second feed carries the same SKUs meanwhile; a poll task reads
    its status until it ends, and the sweeper re-sends that task if Redis lost it.
    `items` holds, per SKU, the values and versions it carries (what settling needs).
    """

    __tablename__ = "submissions"
    __table_args__ = (
        CheckConstraint("status IN ('in_progress', 'finished')", name="known_status"),
        Index(None, "channel_id", "reference", unique=True),
        Index("ix_submissions_in_progress", "next_poll_at", postgresql_where=text("status = 'in_progress'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    channel_id: Mapped[str] = mapped_column(Text, ForeignKey("channels.id"), nullable=False)
    reference: Mapped[str] = mapped_column(Text, nullable=False)
    worker: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'in_progress'"))
    items: Mapped[Any] = mapped_column(JSONB, nullable=False)
    state: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    polls: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    submitted_at: Mapped[datetime] = _now()
    next_poll_at: Mapped[datetime] = _now()
    warned: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    outcome: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HealthAlert(Base):
    """A health check that found something wrong (a pull lagging, beat silent, ...), open until the
    check no longer finds it. At most one open alert per (name, subject): it is said once when it
    opens and once when it clears (wheel/services/health.py)."""

    __tablename__ = "health_alerts"
    __table_args__ = (
        Index("ix_health_alerts_open", "name", "subject", unique=True, postgresql_where=text("cleared_at IS NULL")),
        Index(None, "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    # What it is about: a channel and job, a queue, "beat"; "" when the check has one subject.
    subject: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    opened_at: Mapped[datetime] = _now()
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the check saw when it opened, and last (message, the command to look with, figures).
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    checked_at: Mapped[datetime] = _now()
    event_id: Mapped[int | None] = mapped_column(BigInteger)


class Heartbeat(Base):
    """The last time a process that must keep running did its round (beat: every tick)."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime] = _now()
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))


class AlertRow(Base):
    """An alert for the ops team on its way to Slack: the alerts outbox (wheel/services/alerts.py).

    Written in the transaction that records its event (wheel/events.py), so an alert exists exactly
    when its event does. Delivery claims rows (`claimed_at`), commits the claim, posts, then marks
    them sent: a row is posted at most once. A post that fails puts the row back with a later
    `next_attempt_at`; `message_first_id` names the alert whose message carried it (a burst is one
    message).
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_due", "next_attempt_at", postgresql_where=text("sent_at IS NULL AND claimed_at IS NULL")),
        Index(None, "name", "channel_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.id", ondelete="CASCADE"), nullable=False,
                                          unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    channel_id: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _now()
    next_attempt_at: Mapped[datetime] = _now()
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_first_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)


class OperationsDaily(Base):
    """reports.operations_per_day, folded: one row per (IST day, channel, marketplace, event name)
    of the push outcomes, for the days already closed (wheel/services/rollups.py). Rows stay when
    retention purges the events they count."""

    __tablename__ = "operations_daily"
    __table_args__ = (Index(None, "day"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    channel_id: Mapped[str] = mapped_column(Text, nullable=False)
    marketplace: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    events: Mapped[int] = mapped_column(BigInteger, nullable=False)
    items: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ReportRollup(Base):
    """How far a roll-up has folded its source: every IST day up to `folded_through` is in it, and
    nothing after (wheel/services/rollups.py)."""

    __tablename__ = "report_rollups"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    folded_through: Mapped[date] = mapped_column(Date, nullable=False)
    folded_at: Mapped[datetime] = _now()
