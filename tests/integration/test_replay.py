"""`wheelctl inbox replay`: a replayed message keeps its original place in the OMS's order, so an
old value replayed never overwrites a newer one (docs/contracts.md, contract 2), on the real Postgres and sandbox."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from wheel.db.models import Event, InboxMessage, Listing
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.services.replay import replay
from wheel.services.sync import run_sync

QUEUES = {"Q.PRICING": "pricing", "Q.INVENTORY": "inventory"}


def pricing(sku: str, mrp: str, selling: str) -> bytes:
    return (f'<EXTNPriceList><EXTNPriceItemList><EXTNPriceItem ChannelID="UA" EAN="E-{sku}" ItemID="{sku}" '
            f'MRP="{mrp}" SellingPrice="{selling}"/></EXTNPriceItemList></EXTNPriceList>').encode()


def inventory(sku: str, quantity: int) -> bytes:
    return (f'<EXTNInventoryList><EXTNInventoryItemList><EXTNInventoryItem ChannelID="UA" EAN="E-{sku}" ItemID="{sku}" '
            f'Quantity="{quantity}"/></EXTNInventoryItemList></EXTNInventoryList>').encode()


def store(sessions, queue: str, body: bytes) -> int:
    with sessions.begin() as session:
        return store_batch(session, [IncomingMessage(queue, body, None)])[0].inbox_id


def process(sessions, inbox_id: int):
    return process_message(sessions, inbox_id, operation_for_queue=QUEUES.get, max_message_bytes=1_000_000)


def listing(sessions, sku: str) -> Listing:
    with sessions() as session:
        return session.get(Listing, ("UA", sku))


def events(sessions, name: str) -> list[Event]:
    with sessions() as session:
        return list(session.execute(select(Event).where(Event.name == name).order_by(Event.id)).scalars())


def sync(sessions, adapters):
    class NoQuota:
        def acquire(self, operation):
            pass

    return run_sync(sessions, "UA", adapters=adapters, gate_for=lambda ch, ad: NoQuota(), worker="w:1", lease_s=30,
                    default_retry_delays_s=[0.01], time_budget_s=10, settle_s=0)


def test_replaying_an_old_message_leaves_the_newer_value_in_place(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    v1 = store(sessions, "Q.INVENTORY", inventory("S1", 5))
    v2 = store(sessions, "Q.INVENTORY", inventory("S1", 7))
    process(sessions, v1)
    process(sessions, v2)
    sync(sessions, adapters)
    assert sandbox.state.listings["UA"]["S1"]["quantity"] == 7

    replayed = replay(sessions, v1)
    processed = process(sessions, replayed)
    row = listing(sessions, "S1")
    assert (row.quantity, row.quantity_version) == (7, v2)  # old stock does not come back
    assert not row.dirty
    [superseded] = [e for e in events(sessions, "inventory/superseded") if e.inbox_id == replayed]
    assert superseded.parent_id == processed.oms_event_id
    assert superseded.payload["items"] == [{"sku": "S1", "ean": "E-S1", "quantity": 5}]
    assert sync(sessions, adapters).calls == 0
    assert sandbox.state.listings["UA"]["S1"]["quantity"] == 7


def test_a_fixed_replay_of_a_failed_message_loses_to_a_newer_one_and_wins_over_older_ones(sessions, make_channel):
    make_channel("UA")
    v0 = store(sessions, "Q.PRICING", pricing("S2", "600.00", "550.00"))
    broken = store(sessions, "Q.PRICING", pricing("S1", "499.00", "599.00") + pricing("S2", "499.00", "599.00"))
    newer = store(sessions, "Q.PRICING", pricing("S1", "500.00", "450.00"))
    for inbox_id in (v0, broken, newer):
        process(sessions, inbox_id)
    with sessions() as session:
        assert session.get(InboxMessage, broken).status == "failed"  # selling price above the MRP

    fixed = (b'<EXTNPriceList><EXTNPriceItemList>'
             b'<EXTNPriceItem ChannelID="UA" EAN="E-S1" ItemID="S1" MRP="599.00" SellingPrice="499.00"/>'
             b'<EXTNPriceItem ChannelID="UA" EAN="E-S2" ItemID="S2" MRP="599.00" SellingPrice="499.00"/>'
             b'</EXTNPriceItemList></EXTNPriceList>')
    process(sessions, replay(sessions, broken, fixed))
    s1, s2 = listing(sessions, "S1"), listing(sessions, "S2")
    # S1: the OMS sent 450 after the broken message; the fix of the older message does not undo it.
    assert (s1.selling_price, s1.price_version) == (Decimal("450.00"), newer)
    # S2: nothing newer than the broken message; its fix replaces the value from before it.
    assert (s2.selling_price, s2.price_version) == (Decimal("499.00"), broken)
    assert s2.dirty and s2.price_settled < s2.price_version


def test_a_replay_pushes_and_its_outcome_hangs_under_the_replay(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    broken = store(sessions, "Q.INVENTORY", inventory("S1", 5).replace(b'Quantity="5"', b'Quantity="five"'))
    process(sessions, broken)
    replayed = replay(sessions, broken, inventory("S1", 5))
    processed = process(sessions, replayed)
    sync(sessions, adapters)
    assert sandbox.state.listings["UA"]["S1"]["quantity"] == 5
    [success] = events(sessions, "inventory/succeeded")
    assert success.parent_id == processed.oms_event_id


def test_replaying_the_message_whose_value_is_in_place_changes_nothing_and_says_so(sessions, make_channel):
    make_channel("UA")
    v1 = store(sessions, "Q.INVENTORY", inventory("S1", 5))
    process(sessions, v1)
    replayed = replay(sessions, v1, inventory("S1", 6))  # a "correction" of a message that was applied
    process(sessions, replayed)
    row = listing(sessions, "S1")
    assert (row.quantity, row.quantity_version) == (5, v1)
    [superseded] = events(sessions, "inventory/superseded")
    assert superseded.inbox_id == replayed and "wheelctl resync" in superseded.payload["reason"]
