"""The demo channels `make run` seeds: UA succeeds, UB gets HTTP 500; UC is left unknown."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoChannel:
    id: str
    marketplace: str
    credentials_ref: str
    token: str
    sandbox: dict  # the sandbox's behaviour for this channel, less the token


DEMO_CHANNELS = (
    DemoChannel("UA", "tatacliq", "tatacliq-ua", "demo-token-ua", {}),
    DemoChannel("UB", "tatacliq", "tatacliq-ub", "demo-token-ub", {"fail_status": 500}),
)
# Short, so that UB's failure shows within seconds in the demo.
DEMO_RETRY_DELAYS_S = [0.5, 1.0, 2.0]


def sandbox_config() -> dict:
    return {
        "channels": {
            c.id: {"marketplace": c.marketplace, "token": c.token, **c.sandbox} for c in DEMO_CHANNELS
        }
    }
