"""A sync run's calls to operations with quota buckets of their own go side by side, one lane per
operation (Flipkart's updateInventory and updatePrice), so a catalogue-wide change takes as long as
the busier operation, not both end to end; a SKU's calls still go in the plan's order, and a
failure on one lane loses nothing. Real sandbox (answering each call late), real Postgres."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from sandbox.app import ChannelBehaviour
from tests.integration.test_sync_services import NoQuota, due_now, events, inventory, pricing, send
from wheel.marketplaces import adapter_for
from wheel.marketplaces.base import HttpConfig
from wheel.services.channels import add_channel
from wheel.services.lookup_cache import PostgresLookupCache
from wheel.services.sync import run_sync

APP_ID, APP_SECRET = "app-lp", "secret-lp-0123456789"
CHANNEL = "LP"
# The gate here never waits, so the sandbox's quotas are raised out of the way (the gate is tested apart).
OUT_OF_THE_WAY = {op: [1000.0, 1000.0] for op in ("getListings", "updateInventory", "updatePrice")}


@pytest.fixture
def flipkart(sandbox, secrets, sessions):
    sandbox.state.channels[CHANNEL] = ChannelBehaviour(marketplace="flipkart", client_id=APP_ID, token=APP_SECRET,
                                                       delay_s=0.15, quotas=OUT_OF_THE_WAY)
    (secrets.secrets_dir / "flipkart-lp").write_text(json.dumps({"app_id": APP_ID, "app_secret": APP_SECRET}))
    with sessions.begin() as session:
        add_channel(session, channel_id=CHANNEL, marketplace="flipkart", base_url=f"{sandbox.base_url}/flipkart",
                    credentials_ref="flipkart-lp", known_marketplaces=("flipkart",))
    return sandbox.state.channels[CHANNEL]


@pytest.fixture
def adapters(secrets, sessions):
    """The adapters a worker builds: what they look up is kept in Postgres (workers/bootstrap.py)."""
    cache = PostgresLookupCache(sessions)
    return lambda channel: adapter_for(channel, HttpConfig(2, 5), secrets, cache)


def sync(sessions, adapters):
    return run_sync(sessions, CHANNEL, adapters=adapters, gate_for=lambda ch, ad: NoQuota(), worker="w:1",
                    lease_s=30, default_retry_delays_s=[0.01, 0.01], time_budget_s=20, settle_s=0,
                    request_budget_s=7)


def updates(sandbox, operation, since=0):
    return [c for c in sandbox.state.calls[since:]
            if c.channel == CHANNEL and c.operation == operation and c.accepted]


def skus_in(call) -> set[str]:
    return set(call.body or {})


def test_stock_and_price_calls_of_one_run_are_in_flight_together(sessions, sandbox, adapters, flipkart):
    for round_ in (1, 2):  # the second time, the FSNs and locations are known: only updates go
        since = len(sandbox.state.calls)
        send(sessions, "Q.INVENTORY", inventory(*((CHANNEL, f"I{n:02d}", n + round_) for n in range(30))))
        send(sessions, "Q.PRICING", pricing(*((CHANNEL, f"P{n:02d}", "1000.00", f"{500 + n + round_}.00")
                                              for n in range(30))))
        result = sync(sessions, adapters)

    assert result.calls == 6 and not result.more
    assert [c.operation for c in sandbox.state.calls[since:] if c.operation == "getListings"] == []
    prices, stocks = updates(sandbox, "updatePrice", since), updates(sandbox, "updateInventory", since)
    assert len(prices) == 3 and len(stocks) == 3
    overlapping = [(p.id, s.id) for p in prices for s in stocks
                   if p.received_at < s.at and s.received_at < p.at]
    assert overlapping, "every updateInventory waited for every updatePrice: the lanes did not run side by side"


def test_a_skus_price_is_answered_before_its_stock_lists_it(sessions, sandbox, adapters, flipkart):
    skus = [f"B{n:02d}" for n in range(30)]
    send(sessions, "Q.PRICING", pricing(*((CHANNEL, s, "1000.00", "799.00") for s in skus)))
    send(sessions, "Q.INVENTORY", inventory(*((CHANNEL, s, 5) for s in skus)))

    sync(sessions, adapters)

    price_answered = {sku: c.at for c in updates(sandbox, "updatePrice") for sku in skus_in(c)}
    stock_received = {sku: c.received_at for c in updates(sandbox, "updateInventory") for sku in skus_in(c)}
    assert set(price_answered) == set(stock_received) == set(skus)
    early = [s for s in skus if stock_received[s] < price_answered[s]]
    assert early == [], f"listed with stock before the new price was in: {early}"


def test_a_failure_on_one_lane_loses_nothing_and_the_next_run_sends_the_rest(sessions, sandbox, adapters, flipkart):
    flipkart.fail_operation, flipkart.fail_status, flipkart.fail_times = "updatePrice", 503, 1
    send(sessions, "Q.INVENTORY", inventory(*((CHANNEL, f"I{n:02d}", n) for n in range(40))))
    send(sessions, "Q.PRICING", pricing(*((CHANNEL, f"P{n:02d}", "1000.00", f"{500 + n}.00") for n in range(40))))

    first = sync(sessions, adapters)
    assert first.retry_in_s is not None  # the run stopped on the 503 and comes back

    for _ in range(5):
        due_now(sessions)
        sync(sessions, adapters)
        with sessions() as session:
            if not session.scalar(text("SELECT count(*) FROM listings WHERE channel_id = :c AND dirty"),
                                  {"c": CHANNEL}):
                break
    held = sandbox.state.listings[CHANNEL]
    for n in range(40):
        assert {p["inventory"] for p in held[f"I{n:02d}"]["locations"].values()} == {n}
        assert held[f"P{n:02d}"]["selling_price"] == f"{500 + n}.00"
    assert [e.name for e in events(sessions) if e.name.endswith("/failed")] == []
