"""Every request Wheel sends to Amazon is valid against Amazon's official models, and so is every
answer the sandbox gives in their place.

The models are Amazon's own, vendored unmodified under `tests/reference/amazon-sp-api/` (Apache-2.0,
see its README), so these checks run on every clone.
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft4Validator
from jsonschema.validators import validator_for
from werkzeug.test import Client

from sandbox import ChannelBehaviour, SandboxApp
from wheel.domain import ListingUpdate, Price
from wheel.marketplaces.amazon import mapping, orders
from wheel.marketplaces.base import PullWindow

MODELS = Path(__file__).resolve().parents[1] / "reference" / "amazon-sp-api"

INDIA = mapping.INDIA
ITEM_PATH = "/listings/2021-08-01/items/{sellerId}/{sku}"
SEARCH_PATH = "/listings/2021-08-01/items/{sellerId}"
UPDATES = {
    "quantity": ListingUpdate("S1", "E1", quantity=7),
    "price": ListingUpdate("S1", "E1", price=Price(mrp=Decimal("499"), selling_price=Decimal("399.50"))),
    "both": ListingUpdate("S1", "E1", ranged=True, quantity=3,
                          price=Price(mrp=Decimal("10"), selling_price=Decimal("9.99"))),
    "deranging": ListingUpdate("S1", "E1", ranged=False, quantity=0),
}


def load(name: str) -> dict:
    return json.loads((MODELS / name).read_text(encoding="utf-8"))


LISTINGS = load("listingsItems_2021-08-01.json")
FEEDS = load("feeds_2021-06-30.json")
ORDERS = load("orders_2026-01-01.json")


def definition(model: dict, name: str) -> Draft4Validator:
    """A validator for one Swagger 2.0 definition, its `#/definitions/...` refs resolved in the model."""
    schema = {"$ref": f"#/definitions/{name}", "definitions": model["definitions"]}
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def json_schema(name: str):
    """A validator for a JSON Schema file, of the draft its `$schema` names (draft-07 for the feeds)."""
    schema = load(name)
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def wire(body) -> object:
    """A body as Amazon receives it: through mapping.dumps, parsed back."""
    return json.loads(mapping.dumps(body))


def assert_valid(validator, instance) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert errors == []


def undeclared(model: dict, schema: dict, value: object, path: str = "") -> list[str]:
    """Fields of `value` its schema does not declare (the models allow any; we must use only theirs)."""
    if "$ref" in schema:
        schema = model["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    if isinstance(value, dict) and "properties" in schema:
        return [found for key, item in value.items()
                for found in ([f"{path}.{key}"] if key not in schema["properties"]
                              else undeclared(model, schema["properties"][key], item, f"{path}.{key}"))]
    if isinstance(value, list) and "items" in schema:
        return [found for n, item in enumerate(value) for found in undeclared(model, schema["items"], item, f"{path}[{n}]")]
    return []


def assert_order_model(name: str, instance: object) -> None:
    """Valid against orders_2026-01-01.json's `name`, and using only fields it declares."""
    assert_valid(definition(ORDERS, name), instance)
    assert undeclared(ORDERS, {"$ref": f"#/definitions/{name}"}, instance) == []


# -- request bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("update", UPDATES.values(), ids=UPDATES.keys())
def test_patch_body_is_a_listings_item_patch_request(update):
    assert_valid(definition(LISTINGS, "ListingsItemPatchRequest"),
                 wire(mapping.patch_body(update, "SHIRT", INDIA, "INR")))


def test_the_patch_request_validator_does_reject_a_bad_body():
    assert not definition(LISTINGS, "ListingsItemPatchRequest").is_valid({"productType": "SHIRT", "patches": []})


def test_feed_bodies_are_the_models_specifications():
    assert_valid(definition(FEEDS, "CreateFeedDocumentSpecification"), mapping.create_feed_document_request())
    assert_valid(definition(FEEDS, "CreateFeedSpecification"), mapping.create_feed_request("amzn1.tortuga.3.x", INDIA))


def test_feed_document_is_a_listings_feed_v2():
    validator = json_schema("listings-feed-schema-v2.json")
    document = mapping.feed_document("A1SELLER", [(u, "SHIRT") for u in UPDATES.values()], INDIA, "INR")
    assert_valid(validator, wire(document))
    # The validator is strict where it should be: Amazon's own example passes, a PATCH without patches fails.
    assert_valid(validator, load("listings-feed-schema-v2.example.json"))
    broken = wire(document)
    del broken["messages"][0]["patches"]
    assert not validator.is_valid(broken)


# -- query parameters and paths -------------------------------------------------------------------


def operation(path: str, method: str) -> dict:
    return LISTINGS["paths"][path][method]


def assert_query_declared(op: dict, query: dict) -> None:
    declared = {p["name"]: p for p in op["parameters"] if p.get("in") == "query"}
    assert set(query) <= set(declared), f"not in {op['operationId']}: {set(query) - set(declared)}"
    required = {name for name, p in declared.items() if p.get("required")}
    assert required <= set(query), f"{op['operationId']} needs {required - set(query)}"
    for name, value in query.items():
        spec = declared[name]
        if spec["type"] == "array":
            values = str(value).split(",")
            assert len(values) <= spec.get("maxItems", len(values))
            allowed = spec["items"].get("enum")
            assert allowed is None or set(values) <= set(allowed), f"{name}={value}"
        elif spec["type"] == "integer":
            assert isinstance(value, int) and value <= spec.get("maximum", value)
        else:
            assert spec.get("enum") is None or value in spec["enum"], f"{name}={value}"


def test_patch_query_is_what_patch_listings_item_declares():
    assert_query_declared(operation(ITEM_PATH, "patch"), mapping.patch_query(INDIA))


@pytest.mark.parametrize("included", [("summaries",), mapping.READ_INCLUDED_DATA], ids=["product-type", "read"])
def test_get_query_is_what_get_listings_item_declares(included):
    assert_query_declared(operation(ITEM_PATH, "get"), mapping.get_query(INDIA, included))


def test_search_query_is_what_search_listings_items_declares():
    query = mapping.search_query(INDIA, [f"S{n}" for n in range(mapping.MAX_SEARCH_IDENTIFIERS)])
    assert_query_declared(operation(SEARCH_PATH, "get"), query)


SEARCH_ORDERS = ORDERS["paths"][orders.SEARCH_ORDERS]["get"]


def test_search_orders_query_is_what_search_orders_declares():
    now = datetime.now(timezone.utc)
    window = PullWindow(now - timedelta(hours=1), now - timedelta(minutes=3))
    for token in (None, "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"):
        query = orders.search_query(INDIA, window, token)
        assert_query_declared(SEARCH_ORDERS, query)
        dated = [name for name, spec in ((p["name"], p) for p in SEARCH_ORDERS["parameters"])
                 if spec.get("format") == "date-time" and name in query]
        assert dated == ["lastUpdatedAfter", "lastUpdatedBefore"]  # exactly one of the *After, no created*
        for name in dated:
            assert str(query[name]).endswith("Z") and datetime.fromisoformat(str(query[name])).tzinfo is not None
    assert SEARCH_ORDERS["operationId"] == orders.OPERATION
    assert "Rate (requests per second) | Burst |\n| ---- | ---- |\n| 0.0056 | 20 |" in SEARCH_ORDERS["description"]


def test_search_orders_query_check_does_reject_an_undeclared_value():
    with pytest.raises(AssertionError):
        assert_query_declared(SEARCH_ORDERS, {"fulfillmentStatuses": "Canceled"})


def test_the_sample_orders_of_the_mapping_tests_are_the_models_orders():
    from tests.unit.test_amazon_orders import SAMPLES

    for sample in SAMPLES.values():
        assert_order_model("Order", sample)
    assert undeclared(ORDERS, {"$ref": "#/definitions/Order"}, {**SAMPLES["order"], "orderTotal": {}}) == [".orderTotal"]


def test_paths_are_the_models():
    assert mapping.item_path("{sellerId}", "{sku}").replace("%7B", "{").replace("%7D", "}") == ITEM_PATH
    assert {"get", "patch"} <= set(LISTINGS["paths"][ITEM_PATH])
    assert mapping.search_path("{sellerId}").replace("%7B", "{").replace("%7D", "}") == SEARCH_PATH
    assert "post" in FEEDS["paths"][mapping.FEED_DOCUMENTS] and "post" in FEEDS["paths"][mapping.FEEDS]
    assert "get" in FEEDS["paths"][mapping.FEED_DOCUMENTS + "/{feedDocumentId}"]
    assert "get" in FEEDS["paths"][mapping.FEEDS + "/{feedId}"]


# -- the sandbox answers as the models say ----------------------------------------------------------


def test_the_sample_report_of_the_mapping_tests_is_a_processing_report():
    from tests.unit.test_amazon_mapping import REPORT

    assert_valid(json_schema("listings-feed-processing-report-schema-v2.json"), REPORT)


@pytest.fixture
def amazon() -> tuple[Client, dict[str, str]]:
    """The sandbox in-process, and the headers of channel UA's SP-API calls."""
    app = SandboxApp({"UA": ChannelBehaviour(marketplace="amazon", token="r", client_id="c", client_secret="s")})
    client = Client(app)
    answer = client.post("/amazon/auth/o2/token", data={"grant_type": "refresh_token", "refresh_token": "r",
                                                        "client_id": "c", "client_secret": "s"})
    assert answer.status_code == 200
    return client, {"x-amz-access-token": answer.get_json()["access_token"]}


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_sandbox_listings_answers_match_the_model(amazon):
    client, headers = amazon
    base = "/amazon" + mapping.item_path("UA", "S1")
    good = mapping.dumps(mapping.patch_body(UPDATES["both"], "PRODUCT", INDIA, "INR"))
    bad = mapping.dumps(mapping.patch_body(
        ListingUpdate("S1", "E", price=Price(mrp=Decimal("1"), selling_price=Decimal("2"))), "PRODUCT", INDIA, "INR"))

    got = client.get(base, query_string=mapping.get_query(INDIA, mapping.READ_INCLUDED_DATA), headers=headers)
    accepted = client.patch(base, query_string=mapping.patch_query(INDIA), data=good, headers=headers)
    invalid = client.patch(base, query_string=mapping.patch_query(INDIA), data=bad, headers=headers)
    searched = client.get("/amazon" + mapping.search_path("UA"), query_string=mapping.search_query(INDIA, ["S1", "S2"]),
                          headers=headers)
    refused = client.get(base, query_string=mapping.get_query(INDIA))

    assert_valid(definition(LISTINGS, "Item"), got.get_json())
    assert accepted.get_json()["status"] == "ACCEPTED" and invalid.get_json()["status"] == "INVALID"
    for answer in (accepted, invalid):
        assert_valid(definition(LISTINGS, "ListingsItemSubmissionResponse"), answer.get_json())
    assert_valid(definition(LISTINGS, "ItemSearchResults"), searched.get_json())
    assert refused.status_code == 403
    assert_valid(definition(LISTINGS, "ErrorList"), refused.get_json())


def test_sandbox_feed_answers_match_the_model(amazon):
    client, headers = amazon
    items = [(UPDATES["quantity"], "PRODUCT"), (UPDATES["price"], "PRODUCT")]
    document = mapping.feed_document("UA", items, INDIA, "INR")
    # Message 2's selling price goes above its MRP (499): Amazon rejects that message alone.
    offer = document["messages"][1]["patches"][0]["value"][0]
    offer["our_price"][0]["schedule"][0]["value_with_tax"] = Decimal("600")

    created = client.post("/amazon" + mapping.FEED_DOCUMENTS, json=mapping.create_feed_document_request(), headers=headers)
    assert created.status_code == 201
    assert_valid(definition(FEEDS, "CreateFeedDocumentResponse"), created.get_json())
    uploaded = client.put(path_of(created.get_json()["url"]), data=mapping.dumps(document),
                          content_type=mapping.FEED_CONTENT_TYPE)
    assert uploaded.status_code == 200
    feed = client.post("/amazon" + mapping.FEEDS, headers=headers,
                       json=mapping.create_feed_request(created.get_json()["feedDocumentId"], INDIA))
    assert feed.status_code == 202
    assert_valid(definition(FEEDS, "CreateFeedResponse"), feed.get_json())
    status = client.get(f"/amazon{mapping.FEEDS}/{feed.get_json()['feedId']}", headers=headers).get_json()
    assert status["processingStatus"] == "DONE"
    assert_valid(definition(FEEDS, "Feed"), status)
    result = client.get(f"/amazon{mapping.FEED_DOCUMENTS}/{status['resultFeedDocumentId']}", headers=headers).get_json()
    assert_valid(definition(FEEDS, "FeedDocument"), result)
    assert result["compressionAlgorithm"] == "GZIP"

    report = json.loads(gzip.decompress(client.get(path_of(result["url"])).get_data()))
    assert_valid(json_schema("listings-feed-processing-report-schema-v2.json"), report)
    assert [(i["messageId"], i["severity"]) for i in report["issues"]] == [(2, "ERROR")]
    assert report["summary"]["messagesAccepted"] == 1


def test_sandbox_search_orders_answers_match_the_model(amazon):
    client, headers = amazon
    past = time.time() - 3600
    client.post("/_sandbox/orders", json={"channel": "UA", "orders": [
        {"lines": [{"sku": f"S{n}", "price": "199.99", "quantity": 2}, {"sku": "T1", "price": "50"}], "created": past + n}
        for n in range(3)]})
    created = client.get("/_sandbox/orders", query_string={"channel": "UA"}).get_json()["orders"]
    first_line = created[1]["lines"][0]["line_id"]
    client.post("/_sandbox/cancellations", json={"channel": "UA", "cancellations": [
        {"order_id": created[0]["order_id"]},
        {"order_id": created[1]["order_id"], "line_ids": [first_line], "type": "buyer_cancellation"}]})
    query = {"marketplaceIds": INDIA, "createdAfter": "2020-01-01T00:00:00Z", "maxResultsPerPage": 2,
             "includedData": "BUYER,RECIPIENT,PROCEEDS,CANCELLATION,FULFILLMENT"}
    assert_query_declared(SEARCH_ORDERS, query)

    first = client.get("/amazon" + orders.SEARCH_ORDERS, query_string=query, headers=headers)
    second = client.get("/amazon" + orders.SEARCH_ORDERS, headers=headers,
                        query_string={**query, "paginationToken": first.get_json()["pagination"]["nextToken"]})
    refused = client.get("/amazon" + orders.SEARCH_ORDERS, headers=headers,
                          query_string={**query, "lastUpdatedAfter": "2020-01-01T00:00:00Z"})

    assert first.status_code == second.status_code == 200
    for answer in (first.get_json(), second.get_json()):
        assert_order_model("SearchOrdersResponse", answer)
        assert "createdBefore" in answer
    served = first.get_json()["orders"] + second.get_json()["orders"]
    assert [o["fulfillment"]["fulfillmentStatus"] for o in served] == ["CANCELLED", "UNSHIPPED", "UNSHIPPED"]
    assert "pagination" not in second.get_json()
    assert served[1]["orderItems"][0]["cancellation"]["cancellationExecution"]["cancelledBy"] == "BUYER"
    assert served[1]["orderItems"][0]["product"]["price"]["unitPrice"] == {"amount": "99.995", "currencyCode": "INR"}
    assert refused.status_code == 400
    assert_order_model("ErrorList", refused.get_json())


def test_sandbox_orders_of_every_kind_match_the_model(amazon):
    """FBA and shipped orders, a buyer's cancellation request, and cancelled items reported with
    quantity 0 (the sandbox's cancelled_quantity_zero) are still the model's orders."""
    client, headers = amazon
    past = time.time() - 3600
    client.post("/_sandbox/orders", json={"channel": "UA", "orders": [
        {"order_id": "A", "lines": [{"sku": "S1", "price": "10"}, {"sku": "S2", "price": "20"}], "created": past},
        {"order_id": "B", "status": "SHIPPED", "fulfilled_by": "AMAZON", "lines": [{"sku": "S3", "price": "5"}],
         "created": past + 1},
        {"order_id": "C", "lines": [{"sku": "S4", "price": "7", "quantity": 3}], "created": past + 2}]})
    a_lines = [l["line_id"] for l in client.get("/_sandbox/orders", query_string={"channel": "UA"}).get_json()["orders"][0]["lines"]]
    client.post("/_sandbox/cancellation-requests", json={"channel": "UA", "requests": [{"order_id": "A", "line_ids": a_lines[:1]}]})
    client.post("/_sandbox/cancellations", json={"channel": "UA", "cancellations": [
        {"order_id": "A", "line_ids": a_lines[1:]}, {"order_id": "C"}]})
    client.put("/_sandbox/channels/UA", json={"cancelled_quantity_zero": True})
    query = {"marketplaceIds": INDIA, "createdAfter": "2020-01-01T00:00:00Z",
             "includedData": ",".join(next(p for p in SEARCH_ORDERS["parameters"] if p["name"] == "includedData")["items"]["enum"])}

    answer = client.get("/amazon" + orders.SEARCH_ORDERS, query_string=query, headers=headers)

    assert answer.status_code == 200, answer.get_data()
    assert_order_model("SearchOrdersResponse", answer.get_json())
    served = {o["orderId"]: o for o in answer.get_json()["orders"]}
    assert served["A"]["orderItems"][1]["quantityOrdered"] == 0
    assert set(served["A"]["orderItems"][0]["cancellation"]) == {"cancellationRequest"}
    assert served["B"]["fulfillment"]["fulfilledBy"] == "AMAZON"
    assert served["C"]["fulfillment"]["fulfillmentStatus"] == "CANCELLED" and "recipient" not in served["C"]
