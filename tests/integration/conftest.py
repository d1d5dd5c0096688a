from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis

from sandbox.app import ChannelBehaviour, SandboxApp, serve
from tests.support import services
from tests.support.gates import RecordingGate
from tests.support.spapi import Conformance
from wheel.marketplaces import adapter_for
from wheel.marketplaces.base import HttpConfig
from wheel.secrets import SecretStore
from wheel.services.channels import add_channel


@pytest.fixture
def broker():
    """The tests' Redis database, which is also the Celery broker of their apps: empty, before and after."""
    client = redis.Redis.from_url(services.TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def sandbox(request):
    """The real sandbox server, in a thread of the test process, on a free port. Every Amazon call
    it takes and every answer it gives is checked against Amazon's models; a test that saw a
    request or an answer Amazon's models do not allow fails (tests/support/spapi.py), unless it
    is marked `sandbox_off_model` because it sends one on purpose."""
    app = SandboxApp()
    conformance = Conformance()
    app.observers.append(conformance)
    app.conformance = conformance
    server = serve(app, "127.0.0.1", 0)
    # Polling for shutdown every 20ms (not 500ms): the server is started for many tests.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    app.base_url = f"http://127.0.0.1:{server.server_port}"
    yield app
    server.shutdown()
    server.server_close()
    if request.node.get_closest_marker("sandbox_off_model") is None:
        assert conformance.problems == [], "requests or answers outside Amazon's models:\n" + "\n".join(
            conformance.problems[:20])


@pytest.fixture
def secrets(tmp_path: Path) -> SecretStore:
    return SecretStore({}, tmp_path)


@pytest.fixture
def make_channel(sessions, sandbox, secrets):
    def make(channel_id: str, token: str = "t0ken", sandbox_token: str | None = None, **behaviour):
        sandbox.state.channels[channel_id] = ChannelBehaviour(token=sandbox_token or token, **behaviour)
        ref = f"tatacliq-{channel_id.lower()}"
        (secrets.secrets_dir / ref).write_text(token)
        with sessions.begin() as session:
            add_channel(session, channel_id=channel_id, marketplace="tatacliq", base_url=f"{sandbox.base_url}/tatacliq",
                        credentials_ref=ref, known_marketplaces=("tatacliq",))

    return make


@pytest.fixture
def adapters(secrets):
    http = HttpConfig(2, 5)
    return lambda channel: adapter_for(channel, http, secrets)


@pytest.fixture
def gate() -> RecordingGate:
    return RecordingGate()
