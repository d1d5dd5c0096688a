"""Processing a stored OMS message: every outcome as events and desired state, and the few SQL
statements a message costs whatever its size (docs/contracts.md, contract 2), on the real Postgres."""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

from sqlalchemy import event, text

from wheel.events import NewEvent, record
from wheel.services.channels import add_channel
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.services.replay import replay

QUEUES = {"Q.RANGING": "ranging", "Q.DERANGING": "deranging", "Q.INVENTORY": "inventory", "Q.PRICING": "pricing"}


def inventory(*items: tuple[str, str, int]) -> bytes:
    rows = "".join(f'<EXTNInventoryItem ChannelID="{ch}" EAN="E-{sku}" ItemID="{sku}" Quantity="{q}"/>' for ch, sku, q in items)
    return f"<EXTNInventoryList><EXTNInventoryItemList>{rows}</EXTNInventoryItemList></EXTNInventoryList>".encode()


def ranging(flag: str, *items: tuple[str, str]) -> bytes:
    rows = "".join(f'<EXTNChannelItem ChannelID="{ch}" EAN="E-{sku}" ItemID="{sku}" RangeFlag="{flag}"/>' for ch, sku in items)
    return f"<EXTNChannelList><EXTNChannelItemList>{rows}</EXTNChannelItemList></EXTNChannelList>".encode()


def store(sessions, queue: str, body: bytes) -> int:
    with sessions.begin() as session:
        return store_batch(session, [IncomingMessage(queue, body, None)])[0].inbox_id


def process(sessions, inbox_id: int):
    return process_message(sessions, inbox_id, operation_for_queue=QUEUES.get, max_message_bytes=1_000_000)


def channels(sessions) -> None:
    with sessions.begin() as session:
        for channel_id, enabled in (("UA", True), ("UB", True), ("UD", False)):
            add_channel(session, channel_id=channel_id, marketplace="tatacliq", base_url="http://127.0.0.1:9/tatacliq",
                        credentials_ref=f"tatacliq-{channel_id.lower()}", known_marketplaces=("tatacliq",),
                        enabled=enabled)


def logged(sessions) -> list[tuple]:
    """Every event, in order: its name, level, channel, marketplace, message, parent (by the
    message whose oms event it is), alert, and payload (the oms event's: its inbox id only)."""
    with sessions() as session:
        rows = session.execute(text(
            "SELECT e.type, e.name, e.level, e.channel_id, e.marketplace, e.inbox_id, p.type AS parent_type,"
            " p.inbox_id AS parent_inbox, e.payload, a.id IS NOT NULL AS alerted"
            " FROM events e LEFT JOIN events p ON p.id = e.parent_id LEFT JOIN alerts a ON a.event_id = e.id"
            " ORDER BY e.id")).all()
    return [(r.name, r.level, r.channel_id, r.marketplace, r.inbox_id,
             None if r.parent_type is None else (r.parent_type, r.parent_inbox), r.alerted,
             {"inbox_id": r.payload["inbox_id"]} if r.type == "oms" else r.payload) for r in rows]


def listings(sessions) -> dict[tuple[str, str], tuple]:
    with sessions() as session:
        rows = session.execute(text(
            "SELECT channel_id, sku, ean, ranged, ranged_version, quantity, quantity_version, dirty FROM listings"))
        return {(r.channel_id, r.sku): (r.ean, r.ranged, r.ranged_version, r.quantity, r.quantity_version, r.dirty)
                for r in rows}


def test_every_outcome_of_a_message_in_events_and_desired_state(sessions):
    channels(sessions)
    m1 = store(sessions, "Q.INVENTORY", inventory(("UA", "S1", 5), ("UA", "S2", 6), ("UX", "S9", 1), ("UD", "S8", 2),
                                                  ("UB", "S1", 7)))
    m2 = store(sessions, "Q.INVENTORY", inventory(("UA", "S1", 8), ("UA", "S3", 9)))
    m3 = store(sessions, "Q.RANGING", ranging("Y", ("UA", "S1"), ("UB", "S1")))
    m4 = store(sessions, "Q.DERANGING", ranging("N", ("UA", "S1")))
    bad = store(sessions, "Q.INVENTORY", b"<EXTNInventoryList><oops")
    stray = store(sessions, "Q.ELSEWHERE", inventory(("UA", "S1", 1)))
    results = {m: process(sessions, m) for m in (m1, m2, m3, m4, bad, stray)}
    again = replay(sessions, m1)  # in m1's place: S1 has a newer value (m2's), S2 still m1's own
    results[again] = process(sessions, again)
    assert process(sessions, m1).skipped

    assert [results[m].channels for m in (m1, m2, m3, m4, bad, stray, again)] == [
        [("UA", "tatacliq"), ("UB", "tatacliq")], [("UA", "tatacliq")], [("UA", "tatacliq"), ("UB", "tatacliq")],
        [("UA", "tatacliq")], [], [], [("UA", "tatacliq"), ("UB", "tatacliq")]]
    assert [len(results[m].alerts) for m in (m1, m2, m3, m4, bad, stray, again)] == [2, 0, 0, 0, 1, 1, 2]
    with sessions() as session:
        statuses = dict(session.execute(text("SELECT id, status FROM inbox")).all())
        event_ids = dict(session.execute(text("SELECT id, event_id FROM inbox")).all())
    assert statuses == {m1: "processed", m2: "processed", m3: "processed", m4: "processed", bad: "failed",
                        stray: "failed", again: "processed"}
    assert all(event_ids[m] == results[m].oms_event_id for m in results)

    s1 = {"sku": "S1", "ean": "E-S1", "quantity": 5}
    assert logged(sessions) == [
        ("oms/inventory-updated", "info", None, None, m1, None, False, {"inbox_id": m1}),
        ("system/channel-not-found", "error", "UX", None, m1, ("oms", m1), True,
         {"error": "channel 'UX' is not configured; its items were not sent",
          "items": [{"sku": "S9", "ean": "E-S9", "quantity": 1}]}),
        ("system/channel-disabled", "error", "UD", None, m1, ("oms", m1), True,
         {"error": "channel 'UD' is disabled; its items were not sent",
          "items": [{"sku": "S8", "ean": "E-S8", "quantity": 2}]}),
        ("oms/inventory-updated", "info", None, None, m2, None, False, {"inbox_id": m2}),
        ("inventory/superseded", "info", "UA", "tatacliq", m1, ("oms", m1), False,
         {"items": [{"sku": "S1"}], "superseded_by": m2, "reason": "a newer value replaced it before it was pushed"}),
        ("oms/items-ranged", "info", None, None, m3, None, False, {"inbox_id": m3}),
        ("oms/items-deranged", "info", None, None, m4, None, False, {"inbox_id": m4}),
        ("ranging/superseded", "info", "UA", "tatacliq", m3, ("oms", m3), False,
         {"items": [{"sku": "S1"}], "superseded_by": m4, "reason": "a newer value replaced it before it was pushed"}),
        ("oms/inventory-updated", "info", None, None, bad, None, False, {"inbox_id": bad}),
        ("system/parsing-failed", "error", None, None, bad, ("oms", bad), True,
         {"error": logged(sessions)[9][7]["error"], "queue": "Q.INVENTORY", "inbox_id": bad}),
        ("oms/message-received", "info", None, None, stray, None, False, {"inbox_id": stray}),
        ("system/processing-failed", "error", None, None, stray, ("oms", stray), True,
         {"error": "queue 'Q.ELSEWHERE' is not one of the OMS queues Wheel reads (see WHEEL_QUEUE_*)",
          "queue": "Q.ELSEWHERE", "inbox_id": stray}),
        ("oms/inventory-updated", "info", None, None, again, None, False, {"inbox_id": again}),
        ("system/channel-not-found", "error", "UX", None, again, ("oms", again), True,
         {"error": "channel 'UX' is not configured; its items were not sent",
          "items": [{"sku": "S9", "ean": "E-S9", "quantity": 1}]}),
        ("system/channel-disabled", "error", "UD", None, again, ("oms", again), True,
         {"error": "channel 'UD' is disabled; its items were not sent",
          "items": [{"sku": "S8", "ean": "E-S8", "quantity": 2}]}),
        ("inventory/superseded", "info", "UA", "tatacliq", again, ("oms", again), False,
         {"items": [s1], "superseded_by": "a newer message", "reason": "a newer value replaced it before it was pushed"}),
        ("inventory/superseded", "info", "UA", "tatacliq", again, ("oms", again), False,
         {"items": [{"sku": "S2", "ean": "E-S2", "quantity": 6}], "superseded_by": "a newer message",
          "reason": "the value from this message's place in the order is already in place (this is a replay); a "
                    "replay never overwrites it: `wheelctl resync` pushes the current value again"}),
        ("inventory/superseded", "info", "UB", "tatacliq", again, ("oms", again), False,
         {"items": [{"sku": "S1", "ean": "E-S1", "quantity": 7}], "superseded_by": "a newer message",
          "reason": "the value from this message's place in the order is already in place (this is a replay); a "
                    "replay never overwrites it: `wheelctl resync` pushes the current value again"}),
    ]
    assert "S8" not in str(listings(sessions)) and "S9" not in str(listings(sessions))
    assert listings(sessions) == {
        ("UA", "S1"): ("E-S1", False, m4, 8, m2, True),
        ("UA", "S2"): ("E-S2", None, 0, 6, m1, True),
        ("UA", "S3"): ("E-S3", None, 0, 9, m2, True),
        ("UB", "S1"): ("E-S1", True, m3, 7, m1, True),
    }


@contextmanager
def statements(engine):
    """SQL statements sent, an executemany counting once per parameter set (what Postgres runs)."""
    seen: Counter = Counter()

    def count(conn, cursor, statement, parameters, context, executemany):
        seen[statement.split("\n", 1)[0][:80]] += len(parameters) if executemany else 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_message_costs_a_few_statements_whatever_its_size(sessions, engine):
    channels(sessions)
    costs = []
    for size in (10, 50):
        # Half the SKUs new, half with a value waiting to be pushed, which this message replaces.
        first = store(sessions, "Q.INVENTORY", inventory(*((ch, f"S{size}-{n}", 1) for ch in ("UA", "UB") for n in range(size // 4))))
        process(sessions, first)
        inbox_id = store(sessions, "Q.INVENTORY", inventory(*((ch, f"S{size}-{n}", 2) for ch in ("UA", "UB") for n in range(size // 2))))
        with statements(engine) as seen:
            result = process(sessions, inbox_id)
        assert len(result.channels) == 2
        costs.append(sum(seen.values()))
        print(size, dict(seen))
    assert costs[0] == costs[1], f"statements for 10 and 50 items: {costs}"
    assert costs[0] <= 4, f"{costs[0]} statements for one message"


def test_an_oms_event_already_logged_for_a_message_is_its_parent_and_not_logged_again(sessions):
    channels(sessions)
    inbox_id = store(sessions, "Q.INVENTORY", inventory(("UA", "S1", 5), ("UX", "S2", 1)))
    with sessions.begin() as session:
        existing = record(session, NewEvent(type="oms", name="oms/inventory-updated", inbox_id=inbox_id, payload={"inbox_id": inbox_id},
                                            dedupe_key=f"inbox:{inbox_id}:oms")).id
    result = process(sessions, inbox_id)
    assert result.oms_event_id == existing
    assert [(name, parent) for name, _, _, _, _, parent, _, _ in logged(sessions)] == [
        ("oms/inventory-updated", None), ("system/channel-not-found", ("oms", inbox_id))]
    with sessions() as session:
        assert session.execute(text("SELECT event_id, status FROM inbox")).one() == (existing, "processed")
