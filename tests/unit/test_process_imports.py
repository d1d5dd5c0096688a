"""What the long-running processes of `make run` load: each module a process imports stays in its
memory for good (`python -m tests.bench memory` measures the stack against 600 MiB).

- `wheelctl bridge` loads the bridge's command, not the whole command line (workers/cli/__init__.py
  loads a command's module when that command runs);
- a Celery worker (and beat, and Flower, which load the same app) loads neither sentry-sdk without
  a DSN nor slack-sdk before an alert goes to Slack, nor the marketplace adapters (and requests)
  before a channel needs one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from wheel.marketplaces import ADAPTER_MODULES, MARKETPLACES
from workers import cli

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
{code}
print(json.dumps(sorted(sys.modules)))
"""
# What none of the long-running processes needs at start: the command line's terminal output and
# migrations, the sandbox and its web server, Flower.
NEVER = ("workers.cli.status", "workers.cli.doctor", "rich", "pygments", "alembic", "mako", "sandbox", "werkzeug",
         "flower", "tornado")
# Loaded on first use only.
ON_USE = ("sentry_sdk", "slack_sdk", "requests", "wheel.marketplaces.amazon", "wheel.marketplaces.flipkart",
          "wheel.marketplaces.tatacliq")


def modules_after(code: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHEEL_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE.format(code=code)], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def loaded(modules: set[str], names) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_wheelctl_bridge_loads_its_command_and_not_the_whole_command_line():
    modules = modules_after("import click, workers.cli as c\n"
                            "assert c.main.get_command(click.Context(c.main), 'bridge').name == 'bridge'")
    assert "workers.cli.processes" in modules and "bridge.consumer" in modules
    assert loaded(modules, (*NEVER, *ON_USE, "workers.cli.channels", "workers.cli.messages")) == []


def test_a_worker_loads_neither_sentry_nor_slack_nor_the_adapters_until_it_uses_them():
    modules = modules_after("import workers.app")
    assert "workers.tasks" in modules
    assert loaded(modules, (*NEVER, *ON_USE, "workers.cli")) == []


def test_a_channel_loads_its_marketplaces_adapter_on_first_use():
    modules = modules_after(
        "from wheel.marketplaces import adapter_for\n"
        "from wheel.marketplaces.base import ChannelConfig, HttpConfig\n"
        "from wheel.secrets import SecretStore\n"
        "channel = ChannelConfig(id='UA', marketplace='tatacliq', base_url='http://127.0.0.1:1', credentials_ref='x')\n"
        "adapter_for(channel, HttpConfig(1, 1), SecretStore({'WHEEL_SECRET_X': 'token'}, None))")
    assert "wheel.marketplaces.tatacliq" in modules
    assert loaded(modules, ("wheel.marketplaces.amazon", "wheel.marketplaces.flipkart")) == []


def test_every_marketplace_has_an_adapter_module():
    assert MARKETPLACES == tuple(ADAPTER_MODULES)
    for name, module in ADAPTER_MODULES.items():
        assert (ROOT / module.replace(".", "/") / "__init__.py").is_file(), name


def test_every_command_is_found_by_name_in_its_module():
    modules = {path.stem for path in (ROOT / "workers/cli").glob("*.py") if "\nCOMMANDS = " in path.read_text()}
    assert set(cli.COMMAND_MODULES.values()) == modules
    named = {}
    for module in modules:
        for command in __import__(f"workers.cli.{module}", fromlist=["COMMANDS"]).COMMANDS:
            named[command.name] = module
    assert named == cli.COMMAND_MODULES
    ctx = click.Context(cli.main)
    assert cli.main.list_commands(ctx) == sorted(named)
    for name in named:
        assert cli.main.get_command(ctx, name).name == name
