"""The Tata CLiQ adapter's listing calls against the real sandbox server (in a thread of the test
process): answers that are not what was asked for never count as success."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from sandbox.app import ChannelBehaviour
from wheel.domain import ItemResult, ListingUpdate, Price
from wheel.marketplaces.base import ChannelConfig, HttpConfig
from wheel.marketplaces.errors import TransientError
from wheel.marketplaces.tatacliq import TataCliqAdapter, make_adapter, mapping

TOKEN = "tok-ut-0123456789"


@pytest.fixture
def adapter(sandbox, secrets) -> TataCliqAdapter:
    sandbox.state.channels["UT"] = ChannelBehaviour(marketplace="tatacliq", token=TOKEN)
    (secrets.secrets_dir / "tatacliq-ut").write_text(TOKEN)
    channel = ChannelConfig(id="UT", marketplace="tatacliq", base_url=f"{sandbox.base_url}/tatacliq",
                            credentials_ref="tatacliq-ut")
    return make_adapter(channel, HttpConfig(2, 10), secrets)


def switch(sandbox, **switches) -> None:
    """Turn on Tata CLiQ-only sandbox behaviours for channel UT, through the sandbox's own HTTP API."""
    response = requests.put(f"{sandbox.base_url}/_sandbox/tatacliq/channels/UT", json=switches, timeout=5)
    assert response.status_code == 200, response.text


def execute(adapter, gate, updates: list[ListingUpdate]) -> list[ItemResult]:
    (call,) = mapping.plan(updates)
    return adapter.execute(call, gate, request_id="wheel-test-1")


def state(sandbox) -> dict:
    return sandbox.state.listings.get("UT", {})


def test_an_html_page_at_http_200_is_a_transient_failure_and_nothing_is_settled(sandbox, adapter, gate):
    switch(sandbox, maintenance_page=True)
    with pytest.raises(TransientError) as caught:
        execute(adapter, gate, [ListingUpdate("S1", "E1", quantity=5), ListingUpdate("S2", "E2", quantity=7)])
    message = str(caught.value)
    assert "Tata CLiQ POST /channels/UT/inventory" in message and "not JSON" in message
    assert "text/html" in message and "maintenance" in message.lower()
    assert caught.value.status == 200 and TOKEN not in message
    assert state(sandbox) == {}  # the page came from in front of the API: nothing was applied


def test_a_sku_the_answer_leaves_out_gets_no_verdict_not_success(sandbox, adapter, gate):
    switch(sandbox, unanswered_skus=["S2"])
    results = execute(adapter, gate, [ListingUpdate(f"S{n}", f"E{n}", quantity=n) for n in (1, 2, 3)])
    assert [(r.sku, r.ok, r.code) for r in results] == [("S1", True, None), ("S2", False, "NO_VERDICT"), ("S3", True, None)]
    assert "did not mention this SKU" in results[1].message
    assert sorted(state(sandbox)) == ["S1", "S3"]  # the left-out SKU was not applied either


def test_prices_go_out_as_decimal_strings(sandbox, adapter, gate):
    results = execute(adapter, gate, [ListingUpdate("S1", "E1", price=Price(Decimal("1299.00"), Decimal("999.50"))),
                                      ListingUpdate("S2", "E2", price=Price(Decimal("10.05"), Decimal("0.10")))])
    assert [(r.sku, r.field, r.ok) for r in results] == [("S1", "price", True), ("S2", "price", True)]
    (call,) = [c for c in sandbox.state.calls if c.operation == "pricing"]
    assert call.body == [{"sku": "S1", "ean": "E1", "mrp": "1299.00", "sellingPrice": "999.50"},
                         {"sku": "S2", "ean": "E2", "mrp": "10.05", "sellingPrice": "0.10"}]
    assert (state(sandbox)["S1"]["mrp"], state(sandbox)["S1"]["selling_price"]) == ("1299.00", "999.50")


def test_the_sandbox_refuses_money_sent_as_json_numbers(sandbox, adapter):
    response = requests.post(f"{sandbox.base_url}/tatacliq/channels/UT/pricing",
                             json=[{"sku": "S1", "ean": "E1", "mrp": 1299.0, "sellingPrice": 999.5}],
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert response.status_code == 200
    assert response.json()["items"] == [{"sku": "S1", "status": "FAILURE",
                                         "reason": "mrp and sellingPrice must be decimal strings, e.g. \"999.50\""}]
    assert state(sandbox) == {}


def test_a_maintenance_page_for_a_number_of_calls_then_the_api_again(sandbox, adapter, gate):
    switch(sandbox, maintenance_page=True, maintenance_page_times=1)
    with pytest.raises(TransientError):
        execute(adapter, gate, [ListingUpdate("S1", "E1", quantity=5)])
    assert [(r.sku, r.ok) for r in execute(adapter, gate, [ListingUpdate("S1", "E1", quantity=5)])] == [("S1", True)]
    assert state(sandbox)["S1"]["quantity"] == 5
