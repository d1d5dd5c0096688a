"""A resync finds where the marketplace drifted from the desired state and pushes it back."""

from __future__ import annotations

import json

from sandbox.core import ChannelBehaviour
from tests.integration.test_sync_services import NoQuota, inventory, pricing, send, sync
from wheel.db.models import Channel
from wheel.marketplaces import adapter_for
from wheel.marketplaces.base import HttpConfig
from wheel.services import resync
from wheel.services.channels import add_channel
from wheel.services.sync import channel_config


def test_resync_reports_drift_and_pushes_the_desired_state_back(sessions, sandbox, secrets):
    sandbox.state.channels["UF"] = ChannelBehaviour(marketplace="flipkart", client_id="app-uf", token="secret-uf")
    (secrets.secrets_dir / "flipkart-uf").write_text(json.dumps({"app_id": "app-uf", "app_secret": "secret-uf"}))
    with sessions.begin() as session:
        add_channel(session, channel_id="UF", marketplace="flipkart", base_url=f"{sandbox.base_url}/flipkart",
                    credentials_ref="flipkart-uf", known_marketplaces=("flipkart",))
    adapters = lambda config: adapter_for(config, HttpConfig(2, 5), secrets)  # noqa: E731
    send(sessions, "Q.INVENTORY", inventory(("UF", "S1", 5), ("UF", "S2", 8)))
    send(sessions, "Q.PRICING", pricing(("UF", "S1", "200.00", "150.00")))
    sync(sessions, adapters, channel="UF")
    assert sandbox.state.listings["UF"]["S1"]["quantity"] == 5

    # Someone changed the listing in the seller portal.
    with sandbox.state.lock:
        sandbox.state.listings["UF"]["S1"]["locations"]["LOC-UF"]["inventory"] = 99
    with sessions() as session:
        channel = session.get(Channel, "UF")
    adapter = adapters(channel_config(channel))
    listings = resync.desired(sessions, "UF", None)
    held = resync.read(adapter, NoQuota(), [l.sku for l in listings])
    differences = resync.compare(channel, listings, held)
    assert [(d.sku, d.field, d.wheel, d.marketplace) for d in differences] == [("S1", "quantity", 5, 99)]

    assert resync.mark_for_push(sessions, "UF", differences) == 1
    outcome = sync(sessions, adapters, channel="UF")
    assert outcome.calls == 1 and sandbox.state.listings["UF"]["S1"]["quantity"] == 5
    assert resync.compare(channel, resync.desired(sessions, "UF", None),
                          resync.read(adapter, NoQuota(), ["S1", "S2"])) == []
