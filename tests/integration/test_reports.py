"""The Metabase views (schema `reports`, migration d7b2f9a1c3e5): filled through the real pipeline
(OMS messages, pushes to the sandbox, pulls, the publisher on RabbitMQ), each view's numbers checked
against what was done; and the read-only role, by a LOGIN user in it, reading the views and nothing
else."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from alembic import command
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.support.pipeline import (
    Puller,
    backdate,
    inventory,
    oms,
    order_channel,
    pricing,
    ranging,
    sandbox_post,
    sync,
    tatacliq_switch,
)
from wheel.db import migrate

VIEWS = ("operations_per_day", "failure_reasons_last_7_days", "listing_state", "skus_not_on_marketplace",
         "orders_per_day", "pull_lag", "oms_outbox_backlog", "alert_outbox_backlog")


def ist_today():
    return datetime.now(ZoneInfo("Asia/Kolkata")).date()


def rows(sessions, query: str, **params) -> list[dict]:
    with sessions() as session:
        return [dict(row) for row in session.execute(text(query), params).mappings()]


@pytest.fixture
def puller(sessions, adapters, settings):
    puller = Puller(sessions, adapters, settings)
    yield puller
    puller.close()


@pytest.fixture
def filled(sessions, make_channel, sandbox, adapters, secrets, puller):
    """UA: pushes, some refused; UT: orders and cancellations, some sent to the OMS."""
    make_channel("UA")
    tatacliq_switch(sandbox, "UA", unanswered_skus=["S2"])  # the marketplace leaves S2 out: NO_VERDICT
    oms(sessions, "Q.RANGING", ranging(("UA", "S1"), ("UA", "S2"), ("UA", "S3")))
    sync(sessions, adapters, "UA")
    oms(sessions, "Q.INVENTORY", inventory(("UA", "S1", 5), ("UA", "S2", 6)))
    sync(sessions, adapters, "UA")
    oms(sessions, "Q.PRICING", pricing(("UA", "S3", "100.00", "90.00")))  # not pushed yet
    oms(sessions, "Q.RANGING", b"<not-xml")  # system/parsing-failed

    order_channel(sessions, sandbox, secrets, "UT")
    first = sandbox_post(sandbox, "orders", {"channel": "UT", "count": 3, "lines_per_order": 2})["created"]
    assert puller.pull("UT").orders == 3
    assert puller.publish() == 3
    later = sandbox_post(sandbox, "orders", {"channel": "UT", "count": 2, "lines_per_order": 1})["created"]
    assert puller.pull("UT").orders == 2  # stored, not yet sent
    cancelled = first[0]
    sandbox_post(sandbox, "cancellations", {"channel": "UT", "cancellations": [
        {"order_id": cancelled["order_id"], "line_ids": [cancelled["lines"][0]["line_id"]]}]})
    assert puller.pull("UT", "cancellations").cancellations == 1
    return {"orders": first + later, "cancelled": cancelled}


def test_operations_per_day_counts_each_outcome_and_its_items(sessions, filled):
    got = rows(sessions, "SELECT day, channel_id, operation, outcome, events, items FROM reports.operations_per_day "
                         "ORDER BY operation, outcome")
    today = ist_today()
    assert got == [
        {"day": today, "channel_id": "UA", "operation": "inventory", "outcome": "failed", "events": 1, "items": 1},
        {"day": today, "channel_id": "UA", "operation": "inventory", "outcome": "succeeded", "events": 1, "items": 1},
        {"day": today, "channel_id": "UA", "operation": "ranging", "outcome": "failed", "events": 1, "items": 1},
        {"day": today, "channel_id": "UA", "operation": "ranging", "outcome": "succeeded", "events": 1, "items": 2},
    ]


def test_failure_reasons_name_the_marketplace_code_and_the_parse_error(sessions, filled):
    got = rows(sessions, "SELECT event, channel_id, reason, occurrences, skus, latest_error "
                         "FROM reports.failure_reasons_last_7_days ORDER BY event")
    assert [(r["event"], r["channel_id"], r["reason"], r["occurrences"], r["skus"]) for r in got] == [
        ("inventory/failed", "UA", "NO_VERDICT", 1, 1),
        ("ranging/failed", "UA", "NO_VERDICT", 1, 1),
        ("system/parsing-failed", None, "system/parsing-failed", 1, 0),
    ]
    assert "did not mention this SKU" in got[0]["latest_error"]
    # Eight days ago is outside the last 7 IST days.
    backdate(sessions, "UPDATE events SET created_at = now() - interval '8 days' WHERE name = 'ranging/failed'")
    assert sorted(r["event"] for r in rows(sessions, "SELECT event FROM reports.failure_reasons_last_7_days")) == [
        "inventory/failed", "system/parsing-failed"]


def test_listing_state_is_what_the_marketplace_shows_and_the_gaps_are_listed(sessions, filled, sandbox):
    state = {r["sku"]: r for r in rows(sessions, "SELECT * FROM reports.listing_state WHERE channel_id = 'UA'")}
    shown = sandbox.state.listings["UA"]
    assert (state["S1"]["shown_ranged"], state["S1"]["shown_quantity"]) == (True, 5)
    assert (shown["S1"]["ranged"], shown["S1"]["quantity"]) == (True, 5)  # what the sandbox holds
    assert state["S2"]["shown_ranged"] is None and "S2" not in shown
    assert state["S3"]["desired_selling_price"] == Decimal("90.00") and state["S3"]["shown_selling_price"] is None
    gaps = rows(sessions, "SELECT sku, state, fields, since FROM reports.skus_not_on_marketplace ORDER BY sku")
    assert [(g["sku"], g["state"], g["fields"]) for g in gaps] == [
        ("S2", "failed", "ranged, quantity"), ("S3", "waiting", "price")]
    assert all(g["since"] is not None for g in gaps)


def test_orders_per_day_counts_orders_lines_value_and_cancellations_by_ist_day(sessions, filled, puller):
    # A Tata CLiQ line's Price is the line's total (wheel/marketplaces/tatacliq/orders.py).
    value = sum(Decimal(str(line["price"])) for order in filled["orders"] for line in order["lines"])
    [day] = rows(sessions, "SELECT * FROM reports.orders_per_day")
    assert (day["day"], day["channel_id"], day["marketplace"]) == (ist_today(), "UT", "tatacliq")
    assert (day["orders"], day["orders_sent"], day["orders_waiting"], day["orders_failed"]) == (5, 3, 2, 0)
    assert (day["order_lines"], day["order_value"]) == (8, value)
    assert (day["cancelled_orders"], day["cancelled_lines"], day["cancelled_lines_sent"]) == (1, 1, 0)
    # 02:00 in India today is 20:30 UTC yesterday: counted on India's day.
    backdate(sessions, "UPDATE orders SET received_at = ((now() AT TIME ZONE 'Asia/Kolkata')::date + time '02:00') "
                       "AT TIME ZONE 'Asia/Kolkata' WHERE order_id = :o", o=filled["orders"][-1]["order_id"])
    with sessions() as session:
        utc_day = session.execute(text("SELECT (received_at AT TIME ZONE 'UTC')::date FROM orders WHERE order_id = :o"),
                                  {"o": filled["orders"][-1]["order_id"]}).scalar_one()
    assert utc_day < ist_today()
    assert [r["orders"] for r in rows(sessions, "SELECT orders FROM reports.orders_per_day")] == [5]


def test_pull_lag_and_the_oms_backlog(sessions, filled, puller):
    lag = {r["job"]: r for r in rows(sessions, "SELECT * FROM reports.pull_lag WHERE channel_id = 'UT'")}
    assert set(lag) == {"orders", "cancellations"}
    assert all(r["last_outcome"] == "succeeded" and r["watermark"] is not None and 0 <= r["lag_s"] < 600
               for r in lag.values())
    backlog = rows(sessions, "SELECT kind, channel_id, waiting, oldest_age_s FROM reports.oms_outbox_backlog ORDER BY kind")
    assert [(b["kind"], b["channel_id"], b["waiting"]) for b in backlog] == [("cancellation", "UT", 1), ("order", "UT", 2)]
    assert puller.publish() == 3
    assert rows(sessions, "SELECT * FROM reports.oms_outbox_backlog") == []
    [day] = rows(sessions, "SELECT orders_sent, cancelled_lines_sent FROM reports.orders_per_day")
    assert (day["orders_sent"], day["cancelled_lines_sent"]) == (5, 1)


def test_the_alert_backlog_counts_the_alerts_slack_has_not_taken(sessions, filled):
    """The error events of the run (UA's refusal, the unreadable message) wait in the alert outbox
    until a delivery posts them: the view counts them by name and channel, and forgets them once sent."""
    with sessions() as session:
        expected = dict(session.execute(text(
            "SELECT name || '@' || coalesce(channel_id, '-'), count(*) FROM events WHERE level = 'error' "
            "GROUP BY 1")).all())
    assert expected  # the run recorded errors
    backlog = {f"{r['event']}@{r['channel_id'] or '-'}": r["waiting"]
               for r in rows(sessions, "SELECT * FROM reports.alert_outbox_backlog")}
    assert backlog == expected
    with sessions.begin() as session:
        session.execute(text("UPDATE alerts SET sent_at = now()"))
    assert rows(sessions, "SELECT * FROM reports.alert_outbox_backlog") == []


def test_no_view_shows_a_customer(engine):
    with engine.connect() as connection:
        columns = connection.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'reports'")).all()
    assert {t for t, _ in columns} == set(VIEWS)
    personal = ("name", "address", "phone", "ship", "bill", "raw", "document", "body", "payment", "zip", "city")
    assert [c for c in columns if any(word in c[1] for word in personal)] == []


def connect(database_url: str, user: str) -> psycopg.Connection:
    url = make_url(database_url)
    return psycopg.connect(host=url.host, port=url.port, dbname=url.database, user=user, autocommit=True,
                           connect_timeout=10)


@pytest.fixture
def reports_login(database_url):
    """A LOGIN user in the role, as README's "Reports (Metabase)" makes Metabase's (trust auth here)."""
    name = f"reports_test_{uuid.uuid4().hex[:8]}"
    with connect(database_url, "postgres") as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE wheel_reports").format(sql.Identifier(name)))
        try:
            with connect(database_url, name) as connection:
                yield connection
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_the_reports_role_reads_the_views_and_nothing_else(filled, reports_login, database_url, engine):
    cursor = reports_login.cursor()
    with connect(database_url, "postgres") as admin:
        for view in VIEWS:
            count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("reports", view))
            expected = admin.execute(count).fetchone()[0]
            assert cursor.execute(count).fetchone()[0] == expected > 0, view
    for table in ("orders", "inbox", "events", "outbox", "channels", "listings", "cancellations"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cursor.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier("public", table)))
    for view in VIEWS:
        cursor.execute("SELECT has_table_privilege(%s, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
                       (f"reports.{view}",))
        assert cursor.fetchone()[0] is False, view
    for statement in ("UPDATE public.channels SET enabled = false",
                      "DELETE FROM public.events",
                      "INSERT INTO public.inbox (queue, transport_message_id, body, body_sha256, size) "
                      "VALUES ('q', 'x', '', '', 0)",
                      "CREATE TABLE public.sneaky (id int)",
                      "CREATE TABLE reports.sneaky (id int)",
                      "CREATE VIEW reports.sneaky AS SELECT 1"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cursor.execute(statement)
    # A table added to the schema later is not the role's: no default privileges give it away.
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE reports.later (secret text)"))
        assert connection.execute(text(
            "SELECT count(*) FROM pg_default_acl WHERE defaclacl::text LIKE '%wheel_reports%'")).scalar_one() == 0
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cursor.execute("SELECT * FROM reports.later")
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE reports.later"))


def test_the_views_are_security_barriers_owned_by_the_migrations_role(engine):
    with engine.connect() as connection:
        views = connection.execute(text(
            "SELECT c.relname, pg_get_userbyid(c.relowner) AS owner, c.reloptions FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'reports' AND c.relkind = 'v'")).all()
        me = connection.execute(text("SELECT current_user")).scalar_one()
    assert {v.relname for v in views} == set(VIEWS)
    assert all(v.owner == me and "security_barrier=true" in (v.reloptions or []) for v in views)


def test_the_downgrade_drops_the_views_and_the_upgrade_makes_them_again(database_url, engine):
    config = migrate.alembic_config(database_url)
    command.downgrade(config, "f5e43e7be2c0")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname = 'reports'")).scalar_one() == 0
        # The role is the cluster's, and stays if another database's views or a login use it; in this
        # database it holds nothing any more.
        granted = connection.execute(text(
            "SELECT (SELECT count(*) FROM pg_class WHERE relacl::text LIKE '%wheel_reports=%') "
            "     + (SELECT count(*) FROM pg_namespace WHERE nspacl::text LIKE '%wheel_reports=%')")).scalar_one()
        assert granted == 0
    command.upgrade(config, "head")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM reports.pull_lag")).scalar_one() == 0
