"""The marketplace sandbox, driven in-process through werkzeug's test client (no sockets)."""

from __future__ import annotations

import time

import pytest
from werkzeug.test import Client

from sandbox import ChannelBehaviour, SandboxApp

TOKEN = "tok-ua-0123456789"
RANGING = "/tatacliq/channels/{}/ranging"
ITEMS = [{"ean": "E1", "sku": "S1"}]


def make_client(**behaviour) -> Client:
    app = SandboxApp({"UA": ChannelBehaviour(marketplace="tatacliq", token=TOKEN, **behaviour)})
    return Client(app)


@pytest.fixture
def client() -> Client:
    return make_client()


def post_ranging(client: Client, body=ITEMS, *, channel="UA", token=TOKEN, request_id=None):
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return client.post(RANGING.format(channel), json=body, headers=headers)


def listings(client: Client, channel="UA") -> dict:
    response = client.get(f"/_sandbox/state/{channel}")
    assert response.status_code == 200
    return response.get_json()["listings"]


def calls(client: Client, query: str = "") -> list[dict]:
    response = client.get(f"/_sandbox/calls{query}")
    assert response.status_code == 200
    return response.get_json()["calls"]


# -- the marketplace endpoint ------------------------------------------------------------------


def test_ranging_with_right_token_is_accepted_and_lists_the_item(client):
    response = post_ranging(client)
    assert response.status_code == 200
    assert response.get_json()["items"] == [{"sku": "S1", "status": "SUCCESS"}]
    assert listings(client) == {"S1": {"ean": "E1", "ranged": True}}


@pytest.mark.parametrize("token", ["wrong-token", "", None], ids=["wrong", "empty", "missing"])
def test_bad_token_gives_401_and_changes_nothing(client, token):
    response = post_ranging(client, token=token)
    assert response.status_code == 401
    assert response.get_json()["code"] == "UNAUTHORIZED"
    assert listings(client) == {}


def test_token_without_bearer_prefix_gives_401(client):
    response = client.post(RANGING.format("UA"), json=ITEMS, headers={"Authorization": TOKEN})
    assert response.status_code == 401


def test_refuse_token_gives_401_even_with_right_token():
    client = make_client(refuse_token=True)
    assert post_ranging(client).status_code == 401
    assert listings(client) == {}


def test_fail_status_fails_every_call():
    client = make_client(fail_status=500)
    statuses = [post_ranging(client).status_code for _ in range(4)]
    assert statuses == [500] * 4
    assert listings(client) == {}


def test_fail_times_fails_only_the_first_calls():
    client = make_client(fail_status=500, fail_times=2)
    statuses = [post_ranging(client).status_code for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    assert listings(client) == {"S1": {"ean": "E1", "ranged": True}}


def test_fail_operations_fails_only_those_operations():
    # The demo's UB: every push fails, its order pulls do not.
    client = make_client(fail_status=500, fail_operations=["ranging", "deranging", "inventory", "pricing"])
    assert post_ranging(client).status_code == 500
    pulled = client.get("/tatacliq/channels/UA/new-orders", headers={"Authorization": f"Bearer {TOKEN}"})
    assert pulled.status_code == 200


def test_delay_s_delays_the_answer():
    client = make_client(delay_s=0.2)
    started = time.monotonic()
    assert post_ranging(client).status_code == 200
    assert 0.18 <= time.monotonic() - started < 2


def test_no_delay_by_default(client):
    started = time.monotonic()
    post_ranging(client)
    assert time.monotonic() - started < 0.15


def test_unknown_channel_gives_404_channel_not_found(client):
    response = post_ranging(client, channel="UZ")
    assert response.status_code == 404
    assert response.get_json()["code"] == "CHANNEL_NOT_FOUND"


def test_channel_of_another_marketplace_gives_404():
    client = Client(SandboxApp({"UA": ChannelBehaviour(marketplace="flipkart", token=TOKEN)}))
    assert post_ranging(client).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"ean": "E1", "sku": "S1"},
        [],
        [{"ean": "E1"}],
        [{"ean": "   ", "sku": "S1"}],
        [{"ean": "E1", "sku": 7}],
        ["S1"],
        [{"ean": "E1", "sku": "S1"}, {"ean": "E2", "sku": ""}],
    ],
    ids=["not-a-list", "empty-list", "no-sku", "blank-ean", "sku-not-string", "item-not-object", "second-item-bad"],
)
def test_bad_payload_gives_400_and_changes_nothing(client, body):
    response = post_ranging(client, body=body)
    assert response.status_code == 400
    assert response.get_json()["code"] in {"INVALID_PAYLOAD", "INVALID_ITEM"}
    assert listings(client) == {}


def test_non_json_body_gives_400(client):
    response = client.post(
        RANGING.format("UA"), data=b"not json", headers={"Authorization": f"Bearer {TOKEN}"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert listings(client) == {}


# -- the call log ------------------------------------------------------------------------------


def test_calls_records_every_call_with_status_channel_request_id_and_body(client):
    post_ranging(client, request_id="req-1")
    post_ranging(client, token="wrong", request_id="req-2")
    post_ranging(client, body=[], request_id="req-3")
    recorded = calls(client)
    assert [(c["status"], c["channel"], c["request_id"], c["body"]) for c in recorded] == [
        (200, "UA", "req-1", ITEMS),
        (401, "UA", "req-2", ITEMS),
        (400, "UA", "req-3", []),
    ]
    assert [c["accepted"] for c in recorded] == [True, False, False]
    assert all(c["method"] == "POST" and c["path"] == "/tatacliq/channels/UA/ranging" for c in recorded)


def test_calls_never_record_the_token(client):
    post_ranging(client)
    post_ranging(client, token="wrong-but-secret")
    text = client.get("/_sandbox/calls").get_data(as_text=True)
    assert TOKEN not in text and "wrong-but-secret" not in text


def test_calls_filter_by_channel():
    client = Client(
        SandboxApp({ch: ChannelBehaviour(token=TOKEN) for ch in ("UA", "UB")})
    )
    post_ranging(client, channel="UA", request_id="a")
    post_ranging(client, channel="UB", request_id="b")
    post_ranging(client, channel="UA", request_id="c")
    assert [c["request_id"] for c in calls(client, "?channel=UA")] == ["a", "c"]
    assert [c["request_id"] for c in calls(client, "?channel=UB")] == ["b"]


def test_calls_filter_since_a_call_id(client):
    for request_id in ("a", "b", "c"):
        post_ranging(client, request_id=request_id)
    first, *_ = calls(client)
    assert [c["request_id"] for c in calls(client, f"?since={first['id']}")] == ["b", "c"]


def test_unknown_channel_calls_are_recorded_too(client):
    post_ranging(client, channel="UZ", request_id="lost")
    assert [(c["channel"], c["status"]) for c in calls(client)] == [("UZ", 404)]


# -- steering ----------------------------------------------------------------------------------


def test_put_configures_a_new_channel(client):
    response = client.put("/_sandbox/channels/UX", json={"marketplace": "tatacliq", "token": "tok-ux"})
    assert response.status_code == 200
    assert post_ranging(client, channel="UX", token="tok-ux").status_code == 200
    assert listings(client, "UX") == {"S1": {"ean": "E1", "ranged": True}}


def test_put_updates_only_the_settings_it_names(client):
    assert client.put("/_sandbox/channels/UA", json={"fail_status": 503}).status_code == 200
    assert post_ranging(client).status_code == 503  # the token was kept
    client.put("/_sandbox/channels/UA", json={"fail_status": None})
    assert post_ranging(client).status_code == 200


def test_put_rejects_unknown_settings_keys(client):
    response = client.put("/_sandbox/channels/UX", json={"token": "t", "colour": "red"})
    assert response.status_code == 400
    assert "colour" in response.get_json()["message"]
    assert "UX" not in client.get("/_sandbox/channels").get_json()


def test_put_rejects_a_body_that_is_not_an_object(client):
    assert client.put("/_sandbox/channels/UX", json=["token"]).status_code == 400


def test_list_channels_never_shows_a_token(client):
    client.put("/_sandbox/channels/UX", json={"token": "tok-ux-secret"})
    response = client.get("/_sandbox/channels")
    channels = response.get_json()
    assert set(channels) == {"UA", "UX"}
    assert all(settings["token"] == "***" for settings in channels.values())
    text = response.get_data(as_text=True)
    assert TOKEN not in text and "tok-ux-secret" not in text


def test_state_of_an_unknown_channel_is_404(client):
    assert client.get("/_sandbox/state/UZ").status_code == 404


def test_reset_clears_calls_and_listings_but_keeps_channels(client):
    post_ranging(client)
    assert client.post("/_sandbox/reset").status_code == 200
    assert calls(client) == []
    assert listings(client) == {}
    assert post_ranging(client).status_code == 200


def test_health(client):
    assert client.get("/_sandbox/health").get_json() == {"status": "ok"}


# -- Tata CLiQ's own switches ------------------------------------------------------------------


SWITCHES = "/_sandbox/tatacliq/channels/{}"


def test_tatacliq_switches_start_off_and_change_only_what_they_name(client):
    assert client.get(SWITCHES.format("UA")).get_json() == {
        "channel": "UA", "maintenance_page": False, "maintenance_page_times": None, "unanswered_skus": []}
    assert client.put(SWITCHES.format("UA"), json={"unanswered_skus": ["S9"]}).status_code == 200
    assert client.put(SWITCHES.format("UA"), json={"maintenance_page": True}).status_code == 200
    switches = client.get(SWITCHES.format("UA")).get_json()
    assert (switches["maintenance_page"], switches["unanswered_skus"]) == (True, ["S9"])


@pytest.mark.parametrize("body, says", [
    ({"colour": "red"}, "colour"),
    ({"maintenance_page": "yes"}, "maintenance_page must be"),
    ({"maintenance_page_times": -1}, "maintenance_page_times must be"),
    ({"unanswered_skus": "S1"}, "unanswered_skus must be"),
    (["S1"], "JSON object"),
])
def test_tatacliq_switches_refuse_what_they_do_not_know(client, body, says):
    response = client.put(SWITCHES.format("UA"), json=body)
    assert response.status_code == 400 and says in response.get_json()["message"]
    assert client.get(SWITCHES.format("UA")).get_json()["maintenance_page"] is False


def test_tatacliq_switches_need_a_tatacliq_channel():
    client = Client(SandboxApp({"UA": ChannelBehaviour(marketplace="tatacliq", token=TOKEN),
                                "UF": ChannelBehaviour(marketplace="flipkart", token=TOKEN)}))
    assert client.put(SWITCHES.format("UF"), json={"maintenance_page": True}).status_code == 404
    assert client.get(SWITCHES.format("UZ")).status_code == 404


def test_a_maintenance_page_answers_200_in_html_and_changes_nothing(client):
    client.put(SWITCHES.format("UA"), json={"maintenance_page": True, "maintenance_page_times": 1})
    response = post_ranging(client)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "maintenance" in response.get_data(as_text=True).lower()
    assert listings(client) == {}
    assert [c["status"] for c in calls(client)] == [200]
    # Only the one call: then the API answers again, and the switch says it is spent.
    assert post_ranging(client).get_json()["items"] == [{"sku": "S1", "status": "SUCCESS"}]
    assert client.get(SWITCHES.format("UA")).get_json()["maintenance_page_times"] == 0


def test_a_maintenance_page_comes_from_in_front_of_the_api_whatever_the_token(client):
    client.put(SWITCHES.format("UA"), json={"maintenance_page": True})
    response = post_ranging(client, token="wrong")
    assert response.status_code == 200 and response.mimetype == "text/html"


def test_unanswered_skus_are_left_out_of_the_answer_and_not_applied(client):
    client.put(SWITCHES.format("UA"), json={"unanswered_skus": ["S2"]})
    response = post_ranging(client, body=[{"ean": "E1", "sku": "S1"}, {"ean": "E2", "sku": "S2"}])
    assert response.get_json() == {"status": "SUCCESS", "items": [{"sku": "S1", "status": "SUCCESS"}]}
    assert listings(client) == {"S1": {"ean": "E1", "ranged": True}}


# -- chaos (the chaos run's marketplaces) ------------------------------------------------------


def test_chaos_refuses_about_its_share_with_5xx_or_a_429_without_retry_after_and_changes_nothing():
    client = make_client(chaos_rate=0.3)
    statuses = [post_ranging(client, body=[{"ean": f"E{n}", "sku": f"S{n}"}]) for n in range(400)]
    refused = [r for r in statuses if r.status_code != 200]
    assert 80 <= len(refused) <= 160, len(refused)
    assert {r.status_code for r in refused} <= {429, 500, 502, 503}
    assert {r.status_code for r in refused} >= {429, 500}
    assert all("Retry-After" not in r.headers for r in refused)
    # A refused call applied nothing; every accepted one did.
    assert len(listings(client)) == 400 - len(refused)
    assert client.get("/_sandbox/stats").get_json()["chaos_refused"] == len(refused)


def test_chaos_answers_its_share_of_calls_late():
    client = make_client(chaos_slow_rate=1.0, chaos_slow_s=0.2)
    started = time.monotonic()
    assert post_ranging(client).status_code == 200
    assert time.monotonic() - started >= 0.2
    client = make_client(chaos_slow_rate=0.0, chaos_slow_s=5)
    started = time.monotonic()
    assert post_ranging(client).status_code == 200
    assert time.monotonic() - started < 1
