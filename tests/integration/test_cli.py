"""`wheelctl`, run as an operator would, against the test database."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.processes import wheelctl
from tests.support.services import settings_env

COMMANDS = [
    [], ["migrate"], ["bridge"], ["sandbox"], ["channels"], ["channels", "list"], ["channels", "add"],
    ["channels", "disable"], ["channels", "enable"], ["channels", "set"], ["resync"], ["oms"], ["oms", "put"], ["events"], ["inbox"],
    ["inbox", "show"], ["inbox", "replay"], ["demo"], ["demo", "seed"], ["demo", "banner"], ["services"],
    ["services", "check"], ["sweep"], ["settings"],
]


def run(settings, *args, check=True):
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run(wheelctl(*args), env=env, capture_output=True, text=True, check=check, timeout=60)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "wheelctl")
def test_every_command_has_help(command, settings):
    result = run(settings, *command, "--help")
    assert "Usage: wheelctl" in result.stdout and len(result.stdout.splitlines()) > 3


def test_channels_add_list_disable(settings, engine):
    run(settings, "channels", "add", "UA", "--marketplace", "tatacliq", "--base-url", "http://127.0.0.1:1/tatacliq",
        "--credentials-ref", "tatacliq-ua", "--retry-delays", "1,2")
    [row] = [json.loads(line) for line in run(settings, "channels", "list", "--json").stdout.splitlines()]
    assert row == {"id": "UA", "marketplace": "tatacliq", "base_url": "http://127.0.0.1:1/tatacliq",
                   "credentials_ref": "tatacliq-ua", "enabled": True, "retry_delays_s": [1.0, 2.0],
                   "options": {}, "buffer_stock": 0, "max_quantity": None, "shadow": False,
                   "quota_scale": 1.0, "quotas": None}
    run(settings, "channels", "set", "UA", "--buffer-stock", "3", "--max-quantity", "40", "--shadow",
        "--option", "location_id=LOC1", "--quota", "inventory=2/4")
    [row] = [json.loads(line) for line in run(settings, "channels", "list", "--json").stdout.splitlines()]
    assert (row["buffer_stock"], row["max_quantity"], row["shadow"]) == (3, 40, True)
    assert row["options"] == {"location_id": "LOC1"} and row["quotas"] == {"inventory": [2.0, 4.0]}
    bad = run(settings, "channels", "set", "UA", "--quota", "inventory=fast", check=False)
    assert bad.returncode == 2 and "requests per second" in bad.stderr
    run(settings, "channels", "disable", "UA")
    assert "no" in run(settings, "channels", "list").stdout.splitlines()[1]

    again = run(settings, "channels", "add", "UA", "--marketplace", "tatacliq", "--base-url", "http://x",
                "--credentials-ref", "r", check=False)
    assert again.returncode == 2 and "exists already" in again.stderr
    bad = run(settings, "channels", "add", "UZ", "--marketplace", "ebay", "--base-url", "http://x",
              "--credentials-ref", "r", check=False)
    assert bad.returncode == 2 and "ebay" in bad.stderr
    missing = run(settings, "channels", "disable", "NOPE", check=False)
    assert missing.returncode == 2 and "no channel NOPE" in missing.stderr


def test_events_filters_and_json(settings, sessions):
    from wheel.events import NewEvent, record

    with sessions.begin() as session:
        parent = record(session, NewEvent(type="oms", name="oms/items-ranged", payload={"queue": "Q", "bytes": 5}))
        record(session, NewEvent(type="domain", name="ranging/succeeded", channel_id="UA", parent_id=parent.id,
                                 payload={"items": [{"sku": "SKU1", "ean": "E"}]}))
        record(session, NewEvent(type="system", name="system/channel-not-found", channel_id="UC", level="error",
                                 parent_id=parent.id, payload={"error": "channel 'UC' is not configured"}))
        record(session, NewEvent(type="oms", name="oms/items-ranged", payload={}))
    lines = [json.loads(line) for line in run(settings, "events", "--json", "--parent", str(parent.id)).stdout.splitlines()]
    assert [e["name"] for e in lines] == ["system/channel-not-found", "ranging/succeeded", "oms/items-ranged"]
    assert [e["name"] for e in map(json.loads, run(settings, "events", "--json", "--channel", "UA").stdout.splitlines())] == ["ranging/succeeded"]
    assert len(run(settings, "events", "--json", "--type", "oms").stdout.splitlines()) == 2
    assert len(run(settings, "events", "--json", "--name", "ranging/*").stdout.splitlines()) == 1
    table = run(settings, "events", "--limit", "2").stdout
    assert "system/channel-not-found" in table and "not configured" in table and "oms/items-ranged" in table


def test_settings_never_print_passwords(settings):
    out = run(settings, "settings").stdout
    assert "WHEEL_DATABASE_URL=" in out and "guest:guest" not in out
