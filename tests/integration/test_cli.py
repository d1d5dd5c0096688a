"""`wheelctl`, run as an operator would, against the test database."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from sqlalchemy import text

from tests.support.processes import wheelctl
from tests.support.services import settings_env

COMMANDS = [
    [], ["migrate"], ["bridge"], ["sandbox"], ["channels"], ["channels", "list"], ["channels", "add"],
    ["channels", "disable"], ["channels", "enable"], ["channels", "set"], ["resync"], ["oms"], ["oms", "put"], ["events"], ["inbox"],
    ["inbox", "show"], ["inbox", "replay"], ["demo"], ["demo", "seed"], ["demo", "banner"], ["services"],
    ["services", "check"], ["sweep"], ["settings"], ["jobs"], ["jobs", "list"], ["jobs", "set"], ["jobs", "enable"],
    ["jobs", "disable"], ["jobs", "run-now"], ["orders"], ["orders", "list"], ["oms", "tail"], ["demo", "orders"],
    ["status"], ["flower"], ["doctor"],
    ["messages"], ["messages", "list"], ["messages", "show"], ["messages", "replay"], ["jobs", "rewind"],
    ["orders", "retry"], ["orders", "release"], ["orders", "expire"],
]


def run(settings, *args, check=True):
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run(wheelctl(*args), env=env, capture_output=True, text=True, check=check, timeout=60)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "wheelctl")
def test_every_command_has_help(command, settings):
    result = run(settings, *command, "--help")
    assert "Usage: wheelctl" in result.stdout and len(result.stdout.splitlines()) > 3


def test_channels_add_list_disable(settings, engine):
    run(settings, "channels", "add", "UA", "--marketplace", "tatacliq", "--base-url", "http://127.0.0.1:1/tatacliq",
        "--credentials-ref", "tatacliq-ua", "--retry-delays", "1,2")
    [row] = [json.loads(line) for line in run(settings, "channels", "list", "--json").stdout.splitlines()]
    assert row == {"id": "UA", "marketplace": "tatacliq", "base_url": "http://127.0.0.1:1/tatacliq",
                   "credentials_ref": "tatacliq-ua", "enabled": True, "retry_delays_s": [1.0, 2.0],
                   "options": {}, "buffer_stock": 0, "max_quantity": None, "shadow": False,
                   "quota_scale": 1.0, "quotas": None}
    run(settings, "channels", "set", "UA", "--buffer-stock", "3", "--max-quantity", "40", "--shadow",
        "--option", "location_id=LOC1", "--quota", "inventory=2/4")
    [row] = [json.loads(line) for line in run(settings, "channels", "list", "--json").stdout.splitlines()]
    assert (row["buffer_stock"], row["max_quantity"], row["shadow"]) == (3, 40, True)
    assert row["options"] == {"location_id": "LOC1"} and row["quotas"] == {"inventory": [2.0, 4.0]}
    bad = run(settings, "channels", "set", "UA", "--quota", "inventory=fast", check=False)
    assert bad.returncode == 2 and "requests per second" in bad.stderr
    run(settings, "channels", "disable", "UA")
    assert "no" in run(settings, "channels", "list").stdout.splitlines()[1]

    again = run(settings, "channels", "add", "UA", "--marketplace", "tatacliq", "--base-url", "http://x",
                "--credentials-ref", "r", check=False)
    assert again.returncode == 2 and "exists already" in again.stderr
    bad = run(settings, "channels", "add", "UZ", "--marketplace", "ebay", "--base-url", "http://x",
              "--credentials-ref", "r", check=False)
    assert bad.returncode == 2 and "ebay" in bad.stderr
    missing = run(settings, "channels", "disable", "NOPE", check=False)
    assert missing.returncode == 2 and "no channel NOPE" in missing.stderr


def test_events_filters_and_json(settings, sessions):
    from wheel.events import NewEvent, record

    with sessions.begin() as session:
        parent = record(session, NewEvent(type="oms", name="oms/items-ranged", payload={"queue": "Q", "bytes": 5}))
        record(session, NewEvent(type="domain", name="ranging/succeeded", channel_id="UA", parent_id=parent.id,
                                 payload={"items": [{"sku": "SKU1", "ean": "E"}]}))
        record(session, NewEvent(type="system", name="system/channel-not-found", channel_id="UC", level="error",
                                 parent_id=parent.id, payload={"error": "channel 'UC' is not configured"}))
        record(session, NewEvent(type="oms", name="oms/items-ranged", payload={}))
    lines = [json.loads(line) for line in run(settings, "events", "--json", "--parent", str(parent.id)).stdout.splitlines()]
    assert [e["name"] for e in lines] == ["system/channel-not-found", "ranging/succeeded", "oms/items-ranged"]
    assert [e["name"] for e in map(json.loads, run(settings, "events", "--json", "--channel", "UA").stdout.splitlines())] == ["ranging/succeeded"]
    assert len(run(settings, "events", "--json", "--type", "oms").stdout.splitlines()) == 2
    assert len(run(settings, "events", "--json", "--name", "ranging/*").stdout.splitlines()) == 1
    table = run(settings, "events", "--limit", "2").stdout
    assert "system/channel-not-found" in table and "not configured" in table and "oms/items-ranged" in table


def test_settings_never_print_passwords(settings):
    out = run(settings, "settings").stdout
    assert "WHEEL_DATABASE_URL=" in out and "guest:guest" not in out


def test_jobs_and_orders_commands(settings, engine):
    run(settings, "channels", "add", "UA", "--marketplace", "tatacliq", "--base-url", "http://127.0.0.1:1/tatacliq",
        "--credentials-ref", "tatacliq-ua")
    rows = {r["job"]: r for r in map(json.loads, run(settings, "jobs", "list", "--json").stdout.splitlines())}
    assert set(rows) == {"orders", "cancellations"}  # a new channel gets its default pulls
    assert rows["orders"]["cron"] == "*/2 * * * *" and rows["orders"]["enabled"]
    out = run(settings, "jobs", "set", "UA", "orders", "* * * * * */30").stdout
    assert "UA orders: * * * * * */30; next run" in out
    run(settings, "jobs", "disable", "UA", "cancellations")
    rows = {r["job"]: r for r in map(json.loads, run(settings, "jobs", "list", "--json").stdout.splitlines())}
    assert rows["orders"]["cron"] == "* * * * * */30" and not rows["cancellations"]["enabled"]
    bad = run(settings, "jobs", "set", "UA", "orders", "every minute", check=False)
    assert bad.returncode == 2 and "not a cron expression" in bad.stderr
    missing = run(settings, "jobs", "enable", "NOPE", "orders", check=False)
    assert missing.returncode == 2 and "no channel NOPE" in missing.stderr
    sent = run(settings, "jobs", "run-now", "UA", "orders").stdout
    assert sent.startswith("run ") and "sent: UA orders" in sent
    with engine.connect() as connection:
        assert connection.execute(text("SELECT trigger, status FROM job_runs")).one() == ("manual", "due")
    assert "no orders" in run(settings, "orders", "list").stdout
    assert "no orders on UA with status failed" in run(settings, "orders", "list", "--channel", "UA", "--status", "failed").stdout


def test_oms_tail_prints_what_is_on_an_oms_queue(settings):
    from bridge.transports.amqp import AmqpTransport

    doc = b'<?xml version="1.0" encoding="UTF-8"?><Order Action="CANCEL" OrderNo="O-1" ModificationReasonCode="x" ModificationReasonText="y"/>'
    transport = AmqpTransport(settings.oms_url.get_secret_value())
    transport.connect()
    transport.put(settings.queue_cancellations, doc, message_id="WHEEL-OUTBOX-00000000042")
    transport.put(settings.queue_cancellations, b"<Order/>", message_id="not-ours")
    transport.close()
    out = run(settings, "oms", "tail", "cancellations", "--wait", "1", "--ids-only").stdout.splitlines()
    assert out[0] == "WHEEL-OUTBOX-00000000042\tcancellation"
    assert out[1].startswith("not-ours\tINVALID")


def test_tables_show_times_in_the_display_zone_and_crons_read_in_their_own(settings, sessions):
    from datetime import datetime, timedelta, timezone

    from wheel.events import NewEvent, record
    from wheel.timefmt import show

    run(settings, "channels", "add", "UA", "--marketplace", "tatacliq", "--base-url", "http://127.0.0.1:1/tatacliq",
        "--credentials-ref", "tatacliq-ua")
    rows = {r["job"]: r for r in map(json.loads, run(settings, "jobs", "list", "--json").stdout.splitlines())}
    assert rows["orders"]["timezone"] == "Asia/Kolkata"  # a new channel's pulls: the display zone

    # 09:00 in India is 03:30 UTC; shown back in India's time, zone named.
    out = run(settings, "jobs", "set", "UA", "orders", "0 9 * * *").stdout
    assert " 09:00:00 IST (the cron read in Asia/Kolkata)" in out
    [row] = [r for r in map(json.loads, run(settings, "jobs", "list", "--json").stdout.splitlines()) if r["job"] == "orders"]
    assert row["next_run_at"].endswith("T03:30:00+00:00")  # --json stays UTC
    # 09:00 UTC is 14:30 in India.
    out = run(settings, "jobs", "set", "UA", "orders", "0 9 * * *", "--tz", "UTC").stdout
    assert " 14:30:00 IST (the cron read in UTC)" in out
    listing = run(settings, "jobs", "list").stdout
    assert "zone" in listing.splitlines()[0] and "UTC" in listing and "Asia/Kolkata" in listing
    assert "14:30:00 IST" in listing
    bad = run(settings, "jobs", "set", "UA", "orders", "0 9 * * *", "--tz", "Mars/Olympus", check=False)
    assert bad.returncode == 2 and "unknown time zone 'Mars/Olympus'" in bad.stderr

    # Events and orders: their times in India's time, zone named.
    created = datetime(2026, 12, 1, 8, 35, 3, 123000, tzinfo=timezone.utc)
    with sessions.begin() as session:
        event = record(session, NewEvent(type="oms", name="oms/items-ranged", payload={}))
        session.execute(text("UPDATE events SET created_at = :t WHERE id = :id"), {"t": created, "id": event.id})
        session.execute(text("INSERT INTO orders (channel_id, order_id, status, raw, received_at, sent_at) "
                             "VALUES ('UA', 'O-1', 'sent', '{}', :r, :s)"), {"r": created, "s": created + timedelta(minutes=1)})
    assert "14:05:03.123 IST" in run(settings, "events").stdout
    orders = run(settings, "orders", "list").stdout
    assert "12-01 14:05:03 IST" in orders and "14:06:03 IST" in orders
    in_utc = settings.model_copy(update={"display_tz": "UTC"})
    assert "08:35:03.123 UTC" in run(in_utc, "events").stdout
    assert show(created, "Asia/Kolkata", "%Z") == "IST"
