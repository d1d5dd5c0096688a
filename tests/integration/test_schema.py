"""The schema is built only by the Alembic migrations, and the models agree with them."""

from __future__ import annotations

from sqlalchemy import inspect, text

from wheel.db import migrate


def test_models_and_migrations_agree(database_url):
    migrate.check(database_url)  # raises when `alembic revision --autogenerate` would find changes


def test_migrations_build_the_tables_the_dashboard_reads(engine):
    inspector = inspect(engine)
    assert {"events", "inbox", "channels", "listings"} <= set(inspector.get_table_names())
    columns = {c["name"] for c in inspector.get_columns("events")}
    assert {"id", "parent_id", "type", "name", "level", "channel_id", "marketplace", "payload", "created_at"} <= columns
    indexed = {tuple(i["column_names"]) for i in inspector.get_indexes("events")}
    assert ("created_at",) in indexed and ("name", "created_at") in indexed and ("channel_id", "created_at") in indexed
    assert any(u["column_names"] == ["queue", "transport_message_id"] for u in inspector.get_unique_constraints("inbox"))


def test_listings_leave_room_on_each_page_for_their_lease_writes(engine):
    """fillfactor 80 (migration d2e3f4a5b6c7): a lease write stays on its page, a HOT update."""
    with engine.connect() as connection:
        options = connection.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'listings'")).scalar_one()
    assert options == ["fillfactor=80"]
