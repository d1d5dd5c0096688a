"""Each adapter's `check_credentials` (used by `wheelctl doctor`) against the real sandbox: accepted
credentials give a short confirmation, refused ones an AuthError that never quotes the secret,
and the call changes nothing on the marketplace."""

from __future__ import annotations

import json

import pytest

from sandbox.app import ChannelBehaviour
from wheel.marketplaces import adapter_for
from wheel.marketplaces.base import ChannelConfig, HttpConfig
from wheel.marketplaces.errors import AuthError, TransientError

HTTP = HttpConfig(2, 5)
AMAZON = {"client_id": "amzn1.application-oa2-client.ud", "client_secret": "client-SECRET-1", "refresh_token": "Atzr|R-SECRET-2"}
FLIPKART = {"app_id": "app-ud", "app_secret": "app-SECRET-3"}
TATACLIQ = "bearer-SECRET-4"


def channel(sandbox, secrets, marketplace: str, secret: str) -> ChannelConfig:
    """Channel UD on `marketplace`, as the sandbox knows it, with `secret` as Wheel's secret for it."""
    behaviour = {
        "amazon": dict(token=AMAZON["refresh_token"], client_id=AMAZON["client_id"], client_secret=AMAZON["client_secret"]),
        "flipkart": dict(token=FLIPKART["app_secret"], client_id=FLIPKART["app_id"]),
        "tatacliq": dict(token=TATACLIQ),
    }[marketplace]
    sandbox.state.channels["UD"] = ChannelBehaviour(marketplace=marketplace, **behaviour)
    (secrets.secrets_dir / f"{marketplace}-ud").write_text(secret)
    options = {"seller_id": "UD", "lwa_url": f"{sandbox.base_url}/amazon/auth/o2/token"} if marketplace == "amazon" else {}
    return ChannelConfig(id="UD", marketplace=marketplace, base_url=f"{sandbox.base_url}/{marketplace}",
                         credentials_ref=f"{marketplace}-ud", options=options)


GOOD = {"amazon": json.dumps(AMAZON), "flipkart": json.dumps(FLIPKART), "tatacliq": TATACLIQ}
BAD = {"amazon": json.dumps({**AMAZON, "refresh_token": "Atzr|WRONG-SECRET"}),
       "flipkart": json.dumps({**FLIPKART, "app_secret": "WRONG-SECRET"}),
       "tatacliq": "WRONG-SECRET"}
# The sandbox's name for the one call each check makes.
CALLED = {"amazon": "lwaToken", "flipkart": "token", "tatacliq": "cancelledOrders"}


@pytest.mark.parametrize("marketplace", ["amazon", "flipkart", "tatacliq"])
def test_accepted_credentials_are_confirmed_with_one_call_that_changes_nothing(sandbox, secrets, marketplace):
    adapter = adapter_for(channel(sandbox, secrets, marketplace, GOOD[marketplace]), HTTP, secrets)
    said = adapter.check_credentials()
    assert said and "SECRET" not in said
    assert [(c.operation, c.status) for c in sandbox.state.calls] == [(CALLED[marketplace], 200)]
    assert sandbox.state.listings.get("UD", {}) == {}


@pytest.mark.parametrize("marketplace", ["amazon", "flipkart", "tatacliq"])
def test_refused_credentials_raise_auth_error_without_the_secret(sandbox, secrets, marketplace):
    adapter = adapter_for(channel(sandbox, secrets, marketplace, BAD[marketplace]), HTTP, secrets)
    with pytest.raises(AuthError) as caught:
        adapter.check_credentials()
    assert "SECRET" not in str(caught.value)
    assert [c.operation for c in sandbox.state.calls] == [CALLED[marketplace]]
    assert sandbox.state.calls[0].status in (400, 401)


def test_a_marketplace_that_does_not_answer_is_a_transient_error(sandbox, secrets):
    config = channel(sandbox, secrets, "tatacliq", TATACLIQ)
    nowhere = ChannelConfig(id="UD", marketplace="tatacliq", base_url="http://127.0.0.1:9/tatacliq",
                            credentials_ref=config.credentials_ref)
    with pytest.raises(TransientError):
        adapter_for(nowhere, HTTP, secrets).check_credentials()
