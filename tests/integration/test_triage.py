"""Triage from the command line: `wheelctl messages`, the new `events` filters, and the confirmation
that commands pushing to a live marketplace ask for. Run as an operator would (a `wheelctl`
process), against the real Postgres; messages are processed in the test process as a worker would."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select, text

from tests.support.processes import wheelctl
from tests.support.services import settings_env
from wheel.db.models import InboxMessage, Listing
from wheel.events import NewEvent, record
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.services.queries import latest_events
from workers.cli.output import display_time, parse_when


def run(settings, *args, check=True, stdin=subprocess.DEVNULL):
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run(wheelctl(*args), env=env, capture_output=True, text=True, check=check, timeout=60,
                          stdin=stdin)


def run_at_a_terminal(settings, *args, answer: str) -> tuple[int, str]:
    """Run with a terminal as standard input (as a person would), typing `answer`."""
    main, child = pty.openpty()
    env = {**os.environ, **settings_env(settings)}
    process = subprocess.Popen(wheelctl(*args), env=env, stdin=child, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    os.close(child)
    os.write(main, answer.encode() + b"\n")
    out, _ = process.communicate(timeout=60)
    os.close(main)
    return process.returncode, out


def inventory(channel: str, sku: str, quantity) -> bytes:
    return (f'<EXTNInventoryList><EXTNInventoryItemList><EXTNInventoryItem ChannelID="{channel}" EAN="E-{sku}" '
            f'ItemID="{sku}" Quantity="{quantity}"/></EXTNInventoryItemList></EXTNInventoryList>').encode()


@pytest.fixture
def inbox(settings, sessions, make_channel):
    """Four messages on the inventory queue, processed: UA S1=5, UA S1=7, UA S2=five (fails), UB S9=1."""
    make_channel("UA")
    make_channel("UB")
    queue = settings.queue_inventory
    ids = {}
    for name, body in (("v1", inventory("UA", "S1", 5)), ("v2", inventory("UA", "S1", 7)),
                       ("broken", inventory("UA", "S2", "five")), ("ub", inventory("UB", "S9", 1))):
        with sessions.begin() as session:
            ids[name] = store_batch(session, [IncomingMessage(queue, body, None)])[0].inbox_id
        process(settings, sessions, ids[name])
    return ids


def process(settings, sessions, inbox_id: int):
    return process_message(sessions, inbox_id, operation_for_queue=settings.operation_for_queue,
                           max_message_bytes=settings.max_message_bytes)


def listed(settings, *args) -> list[dict]:
    return [json.loads(line) for line in run(settings, "messages", "list", "--json", *args).stdout.splitlines()]


def test_messages_list_filters_by_failure_queue_channel_and_time(settings, inbox):
    assert [m["id"] for m in listed(settings)] == sorted(inbox.values(), reverse=True)
    [failed] = listed(settings, "--failed")
    assert failed["id"] == inbox["broken"] and failed["status"] == "failed" and "five" in failed["last_error"]
    assert [m["id"] for m in listed(settings, "--channel", "UB")] == [inbox["ub"]]
    assert len(listed(settings, "--channel", "UA", "--queue", "inventory", "--since", "10m")) == 3
    assert listed(settings, "--queue", "pricing") == []
    later = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
    assert listed(settings, "--since", later) == []

    table = run(settings, "messages", "list", "--failed").stdout
    assert "failed" in table and "IST" in table and settings.queue_inventory in table
    bad = run(settings, "messages", "list", "--since", "yesterday", check=False)
    assert bad.returncode == 2 and "neither an age" in bad.stderr


def test_messages_show_says_what_became_of_a_message_and_writes_its_body(settings, inbox, sessions):
    out = run(settings, "messages", "show", str(inbox["broken"])).stdout
    assert f"message {inbox['broken']}: failed" in out
    assert "parsed now fails" in out and "five" in out
    assert "system/parsing-failed" in out and "oms/inventory-updated" in out
    assert out.rstrip().endswith(inventory("UA", "S2", "five").decode())

    good = run(settings, "messages", "show", str(inbox["v1"])).stdout
    assert "parsed now 1 item (UA 1)" in good and "processed" in good
    raw = subprocess.run(wheelctl("messages", "show", str(inbox["v1"]), "--body-only"),
                         env={**os.environ, **settings_env(settings)}, capture_output=True, check=True, timeout=60)
    assert raw.stdout == inventory("UA", "S1", 5)
    missing = run(settings, "messages", "show", "999999", check=False)
    assert missing.returncode == 2 and "no inbox message 999999" in missing.stderr


def test_a_fixed_replay_of_one_message_keeps_its_place_and_inbox_replay_still_works(settings, inbox, sessions, tmp_path):
    fixed = tmp_path / "fixed.xml"
    fixed.write_bytes(inventory("UA", "S2", 3))
    out = run(settings, "messages", "replay", str(inbox["broken"]), "--body", str(fixed)).stdout
    assert out.startswith(f"replayed inbox {inbox['broken']} as inbox ")
    new_id = int(out.split(" as inbox ")[1].split(";")[0])
    again = run(settings, "inbox", "replay", str(inbox["broken"]), "--body", str(fixed)).stdout
    assert again.startswith(f"replayed inbox {inbox['broken']} as inbox ")
    with sessions() as session:
        copy = session.get(InboxMessage, new_id)
    assert (copy.version, copy.body, copy.headers["replay_of"]) == (inbox["broken"], fixed.read_bytes(), inbox["broken"])
    process(settings, sessions, new_id)
    [row] = [m for m in listed(settings, "--failed") if m["id"] == inbox["broken"]]
    assert {"id": new_id, "status": "processed"} in row["replays"]
    shown = run(settings, "messages", "show", str(new_id)).stdout
    assert f"replays    message {inbox['broken']}" in shown


def test_a_bulk_replay_lists_asks_and_keeps_the_latest_value(settings, inbox, sessions):
    since = ("--since", "1h")
    dry = run(settings, "messages", "replay", "--channel", "UA", *since, "--dry-run").stdout
    assert "would replay 3 messages naming UA" in dry
    failed_only = run(settings, "messages", "replay", "--channel", "UA", *since, "--failed-only", "--dry-run").stdout
    assert "would replay 1 failed message naming UA" in failed_only and str(inbox["broken"]) in failed_only

    refused = run(settings, "messages", "replay", "--channel", "UA", *since, check=False)
    assert refused.returncode == 2 and "no one is at a terminal" in refused.stderr and "--yes" in refused.stderr
    code, out = run_at_a_terminal(settings, "messages", "replay", "--channel", "UA", *since, answer="n")
    assert code == 1 and "[y/N]" in out and "nothing done" in out
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM inbox")).scalar_one() == 4  # nothing replayed

    out = run(settings, "messages", "replay", "--channel", "UA", *since, "--yes").stdout
    assert "replayed 3 messages" in out
    with sessions() as session:
        replays = session.execute(select(InboxMessage).where(InboxMessage.version.is_not(None))
                                  .order_by(InboxMessage.id)).scalars().all()
    assert [r.version for r in replays] == [inbox["v1"], inbox["v2"], inbox["broken"]]
    for replay in replays:
        process(settings, sessions, replay.id)
    with sessions() as session:
        row = session.get(Listing, ("UA", "S1"))
    assert (row.quantity, row.quantity_version) == (7, inbox["v2"])  # the replay of v1 did not bring 5 back

    code, out = run_at_a_terminal(settings, "messages", "replay", "--channel", "UA", *since, "--failed-only",
                                  answer="y")
    # Its replay failed too (same body): it is still a failed message, and a person may try again.
    assert code == 0 and f"replayed 1 message as {replays[-1].id + 1}" in out
    bad = run(settings, "messages", "replay", "--channel", "UA", check=False)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_resync_asks_a_person_and_refuses_a_script_without_yes(settings, sessions, make_channel, sandbox, secrets):
    make_channel("UA")
    with sessions.begin() as session:
        stored = store_batch(session, [IncomingMessage(settings.queue_inventory, inventory("UA", "S1", 5), None)])
    process(settings, sessions, stored[0].inbox_id)
    settings = settings.model_copy(update={"secrets_dir": secrets.secrets_dir})

    refused = run(settings, "resync", "UA", "--push-all", check=False)
    assert refused.returncode == 2 and "no one is at a terminal" in refused.stderr and "--yes" in refused.stderr
    code, out = run_at_a_terminal(settings, "resync", "UA", "--push-all", answer="n")
    assert code == 1 and "Push the desired state of 1 SKUs to UA (tatacliq)? [y/N]" in out and "nothing done" in out
    assert "S1" not in sandbox.state.listings.get("UA", {})
    assert "would push" in run(settings, "resync", "UA", "--push-all", "--dry-run").stdout  # a dry run is not asked

    out = run(settings, "resync", "UA", "--push-all", "--yes").stdout
    assert "resync of UA: 1 SKU pushes" in out
    assert sandbox.state.listings["UA"]["S1"]["quantity"] == 5


def test_events_by_level_time_and_sku(settings, sessions, engine):
    with sessions.begin() as session:
        old = record(session, NewEvent(type="domain", name="inventory/failed", level="error",
                                       payload={"items": [{"sku": "S1", "ean": "E"}], "error": "refused"}))
        session.execute(text("UPDATE events SET created_at = now() - interval '3 hours' WHERE id = :id"), {"id": old.id})
        record(session, NewEvent(type="domain", name="order/received", payload={"order_id": "O1", "skus": ["S1", "S2"]}))
        record(session, NewEvent(type="domain", name="cancellation/held", level="warning",
                                 payload={"order_id": "O2", "skus": ["S3"]}))
        record(session, NewEvent(type="system", name="system/x", payload={"skus": 4, "items": "not a list"}))
        record(session, NewEvent(type="domain", name="ranging/succeeded", payload={"items": [{"sku": "S10"}]}))

    def names(**filters):
        with sessions() as session:
            return [e.name for e in latest_events(session, **filters)]

    assert names(sku="S1") == ["order/received", "inventory/failed"]  # S10 is another SKU
    assert names(sku="S3") == ["cancellation/held"]
    assert names(level="warning") == ["cancellation/held", "inventory/failed"]
    assert names(level="error") == ["inventory/failed"]
    assert names(sku="S1", since=datetime.now(timezone.utc) - timedelta(hours=1)) == ["order/received"]
    lines = run(settings, "events", "--json", "--sku", "S1", "--since", "1h", "--level", "info").stdout.splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["order/received"]


def test_the_sku_filter_is_answered_from_its_index(sessions, engine):
    with sessions.begin() as session:
        session.execute(text(
            "INSERT INTO events (type, name, payload) SELECT 'domain', 'inventory/succeeded', "
            "jsonb_build_object('items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || g))) "
            "FROM generate_series(1, 20000) AS g"))
        session.execute(text("ANALYZE events"))
    statements = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if "event_skus" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        with sessions() as session:
            [found] = latest_events(session, sku="SKU-777")
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    assert found.payload["items"] == [{"sku": "SKU-777"}]
    [(statement, parameters)] = statements
    with engine.connect() as connection:
        plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
    assert "ix_events_skus" in plan, plan


def test_times_people_read_and_type():
    noon = datetime(2026, 12, 1, 6, 30, tzinfo=timezone.utc)
    assert display_time(noon) == "2026-12-01 12:00:00 IST"
    assert display_time(None) == "-"
    assert parse_when("2h", now=noon) == noon - timedelta(hours=2)
    assert parse_when("30m", now=noon) == noon - timedelta(minutes=30)
    assert parse_when("1d", now=noon) == noon - timedelta(days=1)
    assert parse_when("2026-12-01T12:00") == noon  # read in Asia/Kolkata
    assert parse_when("2026-12-01T06:30Z") == noon
    with pytest.raises(ValueError, match="neither an age"):
        parse_when("last week")
