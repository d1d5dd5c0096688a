"""`wheelctl flower`: Flower listens where the settings say (127.0.0.1 unless told otherwise) and asks
for the user:password from WHEEL_FLOWER_BASIC_AUTH or the secret flower-basic-auth, which reaches
Flower in its environment, never on its command line or in wheelctl's output."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from wheel.settings import Settings
from workers.cli import main
from workers.flower import FlowerConfigError, flower_launch, is_loopback

PASSWORD = "n0t-in-any-log"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No WHEEL_* or FLOWER_* variable from the developer's shell reaches these tests."""
    for name in list(os.environ):
        if name.upper().startswith(("WHEEL_", "FLOWER_")):
            monkeypatch.delenv(name)


def settings(tmp_path, **values) -> Settings:
    return Settings(secrets_dir=tmp_path, **values)


def test_by_default_flower_listens_on_localhost_5555_without_a_password(tmp_path):
    launch = flower_launch(settings(tmp_path), {"PATH": "/bin", "FLOWER_BASIC_AUTH": "stale:value"})
    assert launch.argv[1:] == ["-m", "celery", "-A", "workers.app", "flower", "--address=127.0.0.1", "--port=5555"]
    assert not launch.authenticated and launch.url() == "http://127.0.0.1:5555"
    # An inherited FLOWER_* option would override Wheel's settings: it is not passed on.
    assert "FLOWER_BASIC_AUTH" not in launch.env and launch.env["PATH"] == "/bin"


def test_the_password_goes_to_flower_in_its_environment_not_on_its_command_line(tmp_path):
    launch = flower_launch(settings(tmp_path, flower_basic_auth=f"ops:{PASSWORD}", flower_port=15555), {})
    assert launch.env["FLOWER_BASIC_AUTH"] == f"ops:{PASSWORD}"
    assert not any(PASSWORD in arg for arg in launch.argv)
    assert launch.authenticated and launch.users == ("ops",) and "--port=15555" in launch.argv
    assert PASSWORD not in repr(launch.url())


def test_the_secret_is_read_from_the_secrets_directory_or_its_environment_variable(tmp_path):
    (tmp_path / "flower-basic-auth").write_text(f"ops:{PASSWORD}\n")
    assert flower_launch(settings(tmp_path), {}).env["FLOWER_BASIC_AUTH"] == f"ops:{PASSWORD}"
    from_env = flower_launch(settings(tmp_path), {"WHEEL_SECRET_FLOWER_BASIC_AUTH": "a:1,b:2"})
    assert from_env.env["FLOWER_BASIC_AUTH"] == "a:1,b:2" and from_env.users == ("a", "b")
    # The setting wins over the secret.
    assert flower_launch(settings(tmp_path, flower_basic_auth="x:y"), {}).env["FLOWER_BASIC_AUTH"] == "x:y"


def test_flower_refuses_to_listen_beyond_loopback_without_a_password(tmp_path):
    with pytest.raises(FlowerConfigError, match="without a password"):
        flower_launch(settings(tmp_path, flower_address="0.0.0.0"), {})
    (tmp_path / "flower-basic-auth").write_text("")  # an empty secret is no password
    with pytest.raises(FlowerConfigError):
        flower_launch(settings(tmp_path, flower_address="10.1.2.3"), {})
    launch = flower_launch(settings(tmp_path, flower_address="0.0.0.0", flower_basic_auth=f"ops:{PASSWORD}"), {})
    assert "--address=0.0.0.0" in launch.argv
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("flower.example.com")


@pytest.mark.parametrize("value", ["ops", f":{PASSWORD}", "ops:", f"ops:{PASSWORD},second"])
def test_a_malformed_value_is_refused_without_quoting_it(tmp_path, value):
    with pytest.raises(FlowerConfigError) as refused:
        flower_launch(settings(tmp_path, flower_basic_auth=value), {})
    assert PASSWORD not in str(refused.value) and "user:password" in str(refused.value)


def test_wheelctl_flower_says_why_it_will_not_start_and_never_prints_the_password(tmp_path):
    env = {"WHEEL_FLOWER_ADDRESS": "0.0.0.0", "WHEEL_SECRETS_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["flower"], env=env)
    assert result.exit_code == 2 and "without a password" in result.output
    env["WHEEL_FLOWER_BASIC_AUTH"] = f"ops{PASSWORD}"  # no colon
    result = CliRunner().invoke(main, ["flower"], env=env)
    assert result.exit_code == 2 and "user:password" in result.output and PASSWORD not in result.output
    settings_output = CliRunner().invoke(main, ["settings"], env={**env, "WHEEL_FLOWER_BASIC_AUTH": f"ops:{PASSWORD}"})
    assert "WHEEL_FLOWER_BASIC_AUTH=***" in settings_output.output and PASSWORD not in settings_output.output
