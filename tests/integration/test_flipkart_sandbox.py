"""The Flipkart emulator itself, spoken to over HTTP as Flipkart's API would be: the shapes and
behaviours it takes from Flipkart's SDK and reference pages (cited in sandbox/flipkart.py)."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.app import ChannelBehaviour
from sandbox.flipkart import fsn

APP_ID, APP_SECRET = "app-uf", "secret-uf-0123456789"
DAY = 24 * 3600


@pytest.fixture
def api(sandbox):
    """Calls Flipkart's API on channel UF (set up with `options`), as the seller's app would."""

    class Api:
        def setup(self, **behaviour) -> None:
            sandbox.state.channels["UF"] = ChannelBehaviour(marketplace="flipkart", client_id=APP_ID, token=APP_SECRET,
                                                            **behaviour)
            self.token = self.new_token()

        def new_token(self) -> str:
            response = requests.get(f"{sandbox.base_url}/flipkart/oauth-service/oauth/token", auth=(APP_ID, APP_SECRET),
                                    params={"grant_type": "client_credentials", "scope": "Seller_Api"}, timeout=5)
            assert response.status_code == 200, response.text
            return response.json()["access_token"]

        def call(self, method: str, path: str, body=None) -> requests.Response:
            return requests.request(method, f"{sandbox.base_url}/flipkart/sellers{path}", json=body, timeout=5,
                                    headers={"Authorization": f"Bearer {self.token}"})

        def search(self, **filter_) -> list[dict]:
            response = self.call("POST", "/v3/shipments/filter", {"filter": {"type": "preDispatch",
                                                                             "states": ["APPROVED"], **filter_}})
            assert response.status_code == 200, response.text
            return response.json()["shipments"]

        def details(self, *ids: str) -> list[dict]:
            response = self.call("GET", f"/v3/shipments/{','.join(ids)}")
            assert response.status_code == 200, response.text
            return response.json()["shipments"]

        def steer(self, shipment_id: str, **attributes) -> None:
            response = requests.patch(f"{sandbox.base_url}/flipkart/_sandbox/shipments/UF/{shipment_id}",
                                      json=attributes, timeout=5)
            assert response.status_code == 200, response.text

    api = Api()
    api.setup()
    return api


def create(sandbox, *orders: dict) -> list[dict]:
    response = requests.post(f"{sandbox.base_url}/_sandbox/orders", json={"channel": "UF", "orders": list(orders)},
                             timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["created"]


def ist(epoch: float) -> str:
    from datetime import datetime, timedelta, timezone

    return datetime.fromtimestamp(epoch, timezone(timedelta(hours=5, minutes=30))).isoformat()


SHIP_TO = {"first_name": "Meera", "last_name": "Das", "line1": "Plot 1", "line2": "Anna Salai", "city": "Chennai",
           "state": "TamilNadu", "zip_code": "600002"}


# -- addresses ----------------------------------------------------------------------------------


def test_addresses_use_the_sdks_pinCode_with_landmark_and_state_code(sandbox, api):
    (made,) = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}], "ship_to": SHIP_TO,
                               "extra": {"landmark": "Opposite the bus depot"}})
    (shipment,) = api.details(made["shipment_id"])
    assert shipment["deliveryAddress"] == {
        "firstName": "Meera", "lastName": "Das", "pinCode": "600002", "city": "Chennai", "state": "TamilNadu",
        "stateCode": "TN", "addressLine1": "Plot 1", "addressLine2": "Anna Salai",
        "landmark": "Opposite the bus depot", "contactNumber": None}
    assert shipment["billingAddress"]["pinCode"] == "600002" and "pincode" not in shipment["billingAddress"]
    assert shipment["orderId"] == made["order_id"]


def test_a_channel_can_be_switched_to_the_older_pages_pincode(sandbox, api):
    api.setup(options={"address_pincode_key": "pincode"})
    (made,) = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}], "ship_to": SHIP_TO})
    (shipment,) = api.details(made["shipment_id"])
    assert shipment["deliveryAddress"]["pincode"] == "600002" and "pinCode" not in shipment["deliveryAddress"]


# -- approval, holds and dispatch dates ----------------------------------------------------------


def test_a_shipment_approved_late_is_invisible_until_then_and_keeps_its_order_date(sandbox, api):
    now = time.time()
    (late,) = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}], "created": now - 7200,
                               "extra": {"approved_at": now + DAY}})
    assert api.search() == [] and api.details(late["shipment_id"]) == []

    api.steer(late["shipment_id"], approved_at=now)
    (shipment,) = api.search()
    assert shipment["shipmentId"] == late["shipment_id"]
    assert shipment["orderItems"][0]["orderDate"][:19] == ist(now - 7200)[:19]
    assert shipment["dispatchAfterDate"][:19] == ist(now)[:19]
    # An orderDate window that has moved past the order no longer finds it; a dispatchAfterDate one does.
    assert api.search(orderDate={"from": ist(now - 600), "to": ist(now + 60)}) == []
    assert len(api.search(dispatchAfterDate={"from": ist(now - 7 * DAY), "to": ist(now + 2 * DAY)})) == 1
    assert len(api.details(late["shipment_id"])) == 1


def test_held_shipments_are_left_out_of_a_search_unless_it_asks_for_them(sandbox, api):
    held, free = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}], "extra": {"hold": True}},
                        {"lines": [{"sku": "S2", "price": "20"}]})
    assert [s["shipmentId"] for s in api.search()] == [free["shipment_id"]]
    assert [(s["shipmentId"], s["hold"]) for s in api.search(hold=True)] == [(held["shipment_id"], True)]
    assert [s["hold"] for s in api.search(hold=False)] == [False]

    api.setup(options={"held_in_search": True})
    assert [(s["shipmentId"], s["hold"]) for s in api.search()] == [(held["shipment_id"], True),
                                                                   (free["shipment_id"], False)]
    api.setup()
    api.steer(held["shipment_id"], hold=False)
    assert [s["shipmentId"] for s in api.search()] == [held["shipment_id"], free["shipment_id"]]


def test_a_future_dispatch_after_date_is_served_and_filtered_on(sandbox, api):
    now = time.time()
    later, = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}], "extra": {"dispatch_after": now + 5 * DAY}})
    (shipment,) = api.search()
    assert shipment["dispatchAfterDate"][:19] == ist(now + 5 * DAY)[:19]
    assert shipment["dispatchByDate"][:19] == ist(now + 6 * DAY)[:19]
    assert api.search(dispatchAfterDate={"from": ist(now - 7 * DAY), "to": ist(now + 2 * DAY)}) == []
    api.steer(later["shipment_id"], dispatch_after=now + DAY)
    assert len(api.search(dispatchAfterDate={"from": ist(now - 7 * DAY), "to": ist(now + 2 * DAY)})) == 1


def test_steering_refuses_unknown_attributes_and_shipments(sandbox, api):
    (made,) = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}]})
    url = f"{sandbox.base_url}/flipkart/_sandbox/shipments/UF"
    assert requests.patch(f"{url}/{made['shipment_id']}", json={"held": True}, timeout=5).status_code == 400
    assert requests.patch(f"{url}/{made['shipment_id']}", json={"hold": "yes"}, timeout=5).status_code == 400
    assert requests.patch(f"{url}/NO-SUCH", json={"hold": True}, timeout=5).status_code == 404


# -- item-level cancellations ---------------------------------------------------------------------


def test_one_cancelled_item_of_a_shipment_shows_its_status_in_the_search_and_the_details(sandbox, api):
    (made,) = create(sandbox, {"lines": [{"sku": "S1", "price": "10"}, {"sku": "S2", "price": "20"}]})
    first, second = (line["line_id"] for line in made["lines"])
    response = requests.post(f"{sandbox.base_url}/_sandbox/cancellations", timeout=5, json={
        "channel": "UF", "cancellations": [{"order_id": made["order_id"], "line_ids": [first]}]})
    assert response.status_code == 200
    (found,) = api.search()
    (detail,) = api.details(made["shipment_id"])
    for shipment in (found, detail):
        assert [(i["orderItemId"], i["status"]) for i in shipment["orderItems"]] == [(first, "CANCELLED"),
                                                                                      (second, "APPROVED")]
        assert shipment["orderItems"][0]["cancellationDate"] and shipment["orderItems"][1]["cancellationDate"] is None


# -- listings ------------------------------------------------------------------------------------


def test_a_listing_has_every_location_of_the_channel_and_its_status(sandbox, api):
    api.setup(options={"locations": ["LOC-A", "LOC-B"]})
    response = api.call("POST", "/listings/v3/update/inventory", {"S1": {
        "product_id": fsn("UF", "S1"), "locations": [{"id": "LOC-B", "status": "ENABLED", "inventory": 4}]}})
    assert response.json()["S1"]["status"] == "SUCCESS"
    with sandbox.state.lock:
        sandbox.state.listing("UF", "S2").update(listing_status="INACTIVE", archived_status="ARCHIVED")

    detail = api.call("GET", "/listings/v3/S1,S2").json()["available"]
    assert detail["S1"]["locations"] == [{"id": "LOC-A", "status": "DISABLED", "inventory": 0},
                                         {"id": "LOC-B", "status": "ENABLED", "inventory": 4}]
    assert (detail["S1"]["listing_status"], detail["S1"]["archived_status"]) == ("ACTIVE", "NONE")
    assert (detail["S2"]["listing_status"], detail["S2"]["archived_status"]) == ("INACTIVE", "ARCHIVED")
    state = sandbox.state.listings["UF"]["S1"]
    assert (state["ranged"], state["quantity"]) == (True, 4)
    # An update to a listing that is not on sale is taken all the same (UNCONFIRMED, the worst case).
    response = api.call("POST", "/listings/v3/update/inventory", {"S2": {
        "product_id": fsn("UF", "S2"), "locations": [{"id": "LOC-A", "status": "ENABLED", "inventory": 2}]}})
    assert response.json()["S2"]["status"] == "SUCCESS"
    unknown = api.call("POST", "/listings/v3/update/inventory", {"S1": {
        "product_id": fsn("UF", "S1"), "locations": [{"id": "LOC-UF", "status": "DISABLED"}]}})
    assert unknown.json()["S1"]["errors"][0]["code"] == 4103


# -- tokens --------------------------------------------------------------------------------------


def test_an_access_token_stops_working_after_expires_in(sandbox, api):
    api.setup(token_ttl_s=1)
    response = requests.get(f"{sandbox.base_url}/flipkart/oauth-service/oauth/token", auth=(APP_ID, APP_SECRET),
                            params={"grant_type": "client_credentials", "scope": "Seller_Api"}, timeout=5)
    assert response.json()["expires_in"] == 1
    assert api.call("GET", "/listings/v3/S1").status_code == 200
    time.sleep(1.1)
    refused = api.call("GET", "/listings/v3/S1")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
