"""Messages into desired state, and desired state pushed to the marketplace (contracts 2 and 3),
on the real Postgres and the sandbox server."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

from sqlalchemy import select, text

from wheel.db.models import Event, Listing
from wheel.marketplaces.base import QuotaWait
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import process_message
from wheel.services.sync import effective_quantity, run_sync

QUEUES = {"Q.RANGING": "ranging", "Q.DERANGING": "deranging", "Q.INVENTORY": "inventory", "Q.PRICING": "pricing"}


def ranging(*items, flag="Y"):
    rows = "".join(f'<EXTNChannelItem ChannelID="{c}" EAN="E-{s}" ItemID="{s}" RangeFlag="{flag}"/>' for c, s in items)
    return f"<EXTNChannelList><EXTNChannelItemList>{rows}</EXTNChannelItemList></EXTNChannelList>".encode()


def inventory(*items):
    rows = "".join(f'<EXTNInventoryItem ChannelID="{c}" EAN="E-{s}" ItemID="{s}" Quantity="{q}"/>' for c, s, q in items)
    return f"<EXTNInventoryList><EXTNInventoryItemList>{rows}</EXTNInventoryItemList></EXTNInventoryList>".encode()


def pricing(*items):
    rows = "".join(f'<EXTNPriceItem ChannelID="{c}" EAN="E-{s}" ItemID="{s}" MRP="{m}" SellingPrice="{p}"/>' for c, s, m, p in items)
    return f"<EXTNPriceList><EXTNPriceItemList>{rows}</EXTNPriceItemList></EXTNPriceList>".encode()


class NoQuota:
    def __init__(self):
        self.granted = Counter()

    def acquire(self, operation):
        self.granted[operation] += 1

    def throttled(self, retry_after=None):
        return QuotaWait("unknown", retry_after or 0.05)


def send(sessions, queue, body):
    with sessions.begin() as session:
        inbox_id = store_batch(session, [IncomingMessage(queue, body, None)])[0].inbox_id
    return process_message(sessions, inbox_id, operation_for_queue=QUEUES.get, max_message_bytes=1_000_000)


def sync(sessions, adapters, channel="UA", worker="w:1", delays=(0.01, 0.01)):
    return run_sync(sessions, channel, adapters=adapters, gate_for=lambda ch, ad: NoQuota(), worker=worker,
                    lease_s=30, default_retry_delays_s=list(delays), time_budget_s=10, settle_s=0,
                    request_budget_s=7)


def events(sessions, name=None):
    with sessions() as session:
        query = select(Event).order_by(Event.id)
        if name:
            query = query.where(Event.name == name)
        return list(session.execute(query).scalars())


def listing(sessions, sku, channel="UA"):
    with sessions() as session:
        return session.get(Listing, (channel, sku))


def due_now(sessions):
    with sessions.begin() as session:
        session.execute(text("UPDATE listings SET next_attempt_at = now()"))


def test_a_message_becomes_desired_state_and_one_call(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    processed = send(sessions, "Q.RANGING", ranging(("UA", "S1"), ("UA", "S2")))
    assert processed.channels == [("UA", "tatacliq")]
    outcome = sync(sessions, adapters)
    assert (outcome.skus, outcome.calls, outcome.more) == (2, 1, False)
    [success] = events(sessions, "ranging/succeeded")
    assert success.parent_id == processed.oms_event_id
    assert [i["sku"] for i in success.payload["items"]] == ["S1", "S2"]
    assert sandbox.state.listings["UA"]["S1"]["ranged"] is True
    row = listing(sessions, "S1")
    assert not row.dirty and row.pushed_ranged is True and row.ranged_settled == row.ranged_version
    # Nothing left to do: a second run (a redelivered task) calls nobody.
    assert sync(sessions, adapters).calls == 0 and len(sandbox.state.calls) == 1


def test_the_latest_value_wins_and_the_older_one_is_superseded(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    first = send(sessions, "Q.INVENTORY", inventory(("UA", "S1", 5)))
    second = send(sessions, "Q.INVENTORY", inventory(("UA", "S1", 9)))
    [superseded] = events(sessions, "inventory/superseded")
    assert superseded.parent_id == first.oms_event_id
    sync(sessions, adapters)
    assert [c.body for c in sandbox.state.calls] == [[{"sku": "S1", "ean": "E-S1", "quantity": 9}]]
    [success] = events(sessions, "inventory/succeeded")
    assert success.parent_id == second.oms_event_id and success.payload["items"][0]["quantity"] == 9


def test_a_message_that_arrives_after_a_newer_one_changes_nothing(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    with sessions.begin() as session:
        older, newer = store_batch(session, [IncomingMessage("Q.PRICING", pricing(("UA", "S1", "100.00", "90.00")), "a"),
                                             IncomingMessage("Q.PRICING", pricing(("UA", "S1", "100.00", "80.00")), "b")])
    # Workers process them out of order.
    process_message(sessions, newer.inbox_id, operation_for_queue=QUEUES.get, max_message_bytes=10**6)
    process_message(sessions, older.inbox_id, operation_for_queue=QUEUES.get, max_message_bytes=10**6)
    assert listing(sessions, "S1").selling_price == Decimal("80.00")
    [superseded] = events(sessions, "pricing/superseded")
    assert superseded.inbox_id == older.inbox_id
    sync(sessions, adapters)
    assert sandbox.state.listings["UA"]["S1"]["selling_price"] == "80.00"


def test_deranging_pushes_zero_and_ranging_restores_the_quantity_less_the_buffer(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    with sessions.begin() as session:
        session.execute(text("UPDATE channels SET buffer_stock = 2, max_quantity = 50"))
    send(sessions, "Q.INVENTORY", inventory(("UA", "S1", 10), ("UA", "S2", 500)))
    sync(sessions, adapters)
    assert sandbox.state.listings["UA"]["S1"]["quantity"] == 8 and sandbox.state.listings["UA"]["S2"]["quantity"] == 50
    send(sessions, "Q.DERANGING", ranging(("UA", "S1"), flag="N"))
    sync(sessions, adapters)
    assert sandbox.state.listings["UA"]["S1"]["ranged"] is False
    assert listing(sessions, "S1").pushed_quantity == 0
    assert len(events(sessions, "deranging/succeeded")) == 1


def test_effective_quantity():
    assert effective_quantity(False, 10, 0, None) == 0
    assert effective_quantity(True, 10, 3, None) == 7
    assert effective_quantity(None, 2, 3, None) == 0
    assert effective_quantity(True, 100, 0, 40) == 40
    assert effective_quantity(True, None, 0, None) is None


def test_shadow_mode_records_the_calls_and_sends_nothing(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    with sessions.begin() as session:
        session.execute(text("UPDATE channels SET shadow = true"))
    send(sessions, "Q.PRICING", pricing(("UA", "S1", "100.00", "90.00")))
    sync(sessions, adapters)
    assert sandbox.state.calls == []
    [shadowed] = events(sessions, "pricing/shadowed")
    assert shadowed.payload["call"] == {"operation": "pricing", "fields": ["price"], "skus": 1}
    assert not listing(sessions, "S1").dirty


def test_per_item_rejections_become_failure_events_with_the_reason(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    send(sessions, "Q.INVENTORY", inventory(("UA", "S1", 3)))
    # Bypass the OMS's own price check, as a marketplace with a different rule would reject it.
    with sessions.begin() as session:
        session.execute(text("UPDATE listings SET mrp = 10, selling_price = 20, price_version = 99, dirty = true"))
    sync(sessions, adapters)
    failed = events(sessions, "pricing/failed")
    assert failed and failed[0].payload["items"][0]["error"] == "sellingPrice is above mrp"


def tatacliq_switch(sandbox, channel, **switches):
    """Tata CLiQ-only sandbox behaviours, set through the sandbox's HTTP API."""
    import requests

    response = requests.put(f"{sandbox.base_url}/_sandbox/tatacliq/channels/{channel}", json=switches, timeout=5)
    assert response.status_code == 200, response.text


def test_an_html_page_at_http_200_is_retried_and_never_settled_as_succeeded(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    tatacliq_switch(sandbox, "UA", maintenance_page=True, maintenance_page_times=1)
    processed = send(sessions, "Q.INVENTORY", inventory(("UA", "S1", 4), ("UA", "S2", 6)))
    outcome = sync(sessions, adapters)
    assert events(sessions, "inventory/succeeded") == [] and outcome.retry_in_s > 0
    [retrying] = events(sessions, "inventory/retrying")
    assert retrying.parent_id == processed.oms_event_id and retrying.level == "warning"
    assert "not JSON" in retrying.payload["error"] and "text/html" in retrying.payload["error"]
    assert sorted(i["sku"] for i in retrying.payload["items"]) == ["S1", "S2"]
    row = listing(sessions, "S1")
    assert row.dirty and row.attempts == 1 and row.pushed_quantity is None and "not JSON" in row.last_error
    assert sandbox.state.listings.get("UA", {}) == {}
    # The page is gone: the retry goes through, and only now is anything settled.
    due_now(sessions)
    sync(sessions, adapters)
    [success] = events(sessions, "inventory/succeeded")
    assert sorted(i["sku"] for i in success.payload["items"]) == ["S1", "S2"]
    assert sandbox.state.listings["UA"]["S1"]["quantity"] == 4 and listing(sessions, "S2").pushed_quantity == 6


def test_a_sku_the_answer_leaves_out_fails_with_no_verdict(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    tatacliq_switch(sandbox, "UA", unanswered_skus=["S2"])
    send(sessions, "Q.INVENTORY", inventory(("UA", "S1", 4), ("UA", "S2", 6)))
    outcome = sync(sessions, adapters)
    [success] = events(sessions, "inventory/succeeded")
    assert [i["sku"] for i in success.payload["items"]] == ["S1"]
    [failure] = events(sessions, "inventory/failed")
    assert failure.level == "error" and [a.event.name for a in outcome.alerts] == ["inventory/failed"]
    [item] = failure.payload["items"]
    assert (item["sku"], item["code"]) == ("S2", "NO_VERDICT") and "did not mention this SKU" in item["error"]
    assert listing(sessions, "S2").pushed_quantity is None and "S2" not in sandbox.state.listings["UA"]


def test_transient_failures_retry_with_backoff_then_fail_loudly(sessions, make_channel, sandbox, adapters):
    make_channel("UB", fail_status=503)
    processed = send(sessions, "Q.RANGING", ranging(("UB", "S1")))
    outcomes = []
    for _ in range(3):
        due_now(sessions)
        outcomes.append(sync(sessions, adapters, channel="UB"))
    assert [o.retry_in_s > 0 for o in outcomes] == [True, True, False]
    [failure] = events(sessions, "system/processing-failed")
    assert failure.parent_id == processed.oms_event_id
    assert "HTTP 503" in failure.payload["error"] and "after 3 attempts" in failure.payload["error"]
    assert len(events(sessions, "ranging/retrying")) == 2
    assert outcomes[-1].alerts


def test_a_refused_token_blocks_the_channel_loudly_and_never_logs_the_token(sessions, make_channel, adapters):
    make_channel("UA", token="secret-token-123", sandbox_token="another")
    send(sessions, "Q.RANGING", ranging(("UA", "S1")))
    outcome = sync(sessions, adapters)
    [blocked] = events(sessions, "system/channel-blocked")
    assert blocked.payload["kind"] == "auth" and "HTTP 401" in blocked.payload["error"] and outcome.alerts
    assert listing(sessions, "S1").dirty  # waits for the token to be fixed
    with sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM events WHERE payload::text LIKE '%secret-token-123%'")) == 0


def test_two_workers_never_push_the_same_sku(sessions, make_channel, sandbox, adapters):
    make_channel("UA", delay_s=0.2)
    send(sessions, "Q.INVENTORY", inventory(*[("UA", f"S{n}", n) for n in range(20)]))
    threads = [threading.Thread(target=sync, args=(sessions, adapters), kwargs={"worker": f"w:{n}"}) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pushed = Counter(item["sku"] for call in sandbox.state.calls for item in call.body)
    assert set(pushed.values()) == {1} and len(pushed) == 20


def test_an_expired_lease_lets_another_worker_push_and_the_late_one_settles_nothing(sessions, make_channel, sandbox, adapters):
    make_channel("UA")
    send(sessions, "Q.INVENTORY", inventory(("UA", "S1", 4)))
    # A worker claimed it and died mid-call; its lease has run out.
    with sessions.begin() as session:
        session.execute(text("UPDATE listings SET claimed_by = 'dead:1', lease_until = now() - interval '1 second'"))
    assert sync(sessions, adapters, worker="w:2").calls == 1
    assert len(events(sessions, "inventory/succeeded")) == 1 and not listing(sessions, "S1").dirty


def test_a_price_too_big_for_wheel_is_refused_when_the_message_is_parsed(sessions, make_channel):
    make_channel("UA")
    # Eleven digits pass totalDigits 12, but listings.mrp is NUMERIC(12,2): at most ten before the point.
    processed = send(sessions, "Q.PRICING", pricing(("UA", "S1", "100.00", "90.00"), ("UA", "S2", "99999999999", "10.00")))
    with sessions() as session:
        status, error = session.execute(text("SELECT status, last_error FROM inbox")).one()
    assert status == "failed"
    [failed] = events(sessions, "system/parsing-failed")
    assert failed.payload["error"] == error
    assert "item S2 on channel UA" in error and "99999999999" in error and "9999999999.99" in error
    assert [a.event.name for a in processed.alerts] == ["system/parsing-failed"]
    # A bad item refuses the whole message, as every other rule does: the operator fixes it and replays.
    assert listing(sessions, "S1") is None and processed.channels == []


def test_the_largest_price_wheel_holds_is_taken(sessions, make_channel):
    make_channel("UA")
    send(sessions, "Q.PRICING", pricing(("UA", "S1", "9999999999.99", "9999999999")))
    assert listing(sessions, "S1").mrp == Decimal("9999999999.99")
