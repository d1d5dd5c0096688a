"""The demo channels `make run` seeds, one outcome each: UA (Tata CLiQ) succeeds, UB (Tata CLiQ)
gets HTTP 500 for every push (its order pulls work, so the health checks and `wheelctl doctor`
stay quiet about it), UF (Flipkart) and UZ (Amazon) succeed; UC is left unknown."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from wheel.marketplaces import AMAZON, FLIPKART, TATACLIQ


@dataclass(frozen=True)
class DemoChannel:
    id: str
    marketplace: str
    credentials_ref: str
    secret: str  # what Wheel reads (a token, or JSON credentials)
    sandbox: dict  # the sandbox's side of the same channel
    options: dict = field(default_factory=dict)


DEMO_CHANNELS = (
    DemoChannel("UA", TATACLIQ, "tatacliq-ua", "demo-token-ua", {"token": "demo-token-ua"}),
    DemoChannel("UB", TATACLIQ, "tatacliq-ub", "demo-token-ub", {"token": "demo-token-ub", "fail_status": 500,
                                                               "fail_operations": ["ranging", "deranging", "inventory",
                                                                                   "pricing"]}),
    DemoChannel("UF", FLIPKART, "flipkart-uf", json.dumps({"app_id": "demo-app-uf", "app_secret": "demo-secret-uf"}),
                {"client_id": "demo-app-uf", "token": "demo-secret-uf"}),
    DemoChannel("UZ", AMAZON, "amazon-uz",
                json.dumps({"client_id": "demo-lwa-uz", "client_secret": "demo-lwa-secret-uz", "refresh_token": "demo-refresh-uz"}),
                {"client_id": "demo-lwa-uz", "client_secret": "demo-lwa-secret-uz", "token": "demo-refresh-uz"},
                {"seller_id": "UZ"}),
)
# Short, so that UB's failure shows within seconds in the demo.
DEMO_RETRY_DELAYS_S = [0.5, 1.0, 2.0]


def sandbox_config() -> dict:
    return {"channels": {c.id: {"marketplace": c.marketplace, **c.sandbox} for c in DEMO_CHANNELS}}


def options(channel: DemoChannel, sandbox_url: str) -> dict:
    # The OMS learns an order's source from EntryType.
    common = {**channel.options, "oms_header": {"EntryType": channel.id}}
    if channel.marketplace == AMAZON:
        return {**common, "lwa_url": f"{sandbox_url}/amazon/auth/o2/token"}
    return common
