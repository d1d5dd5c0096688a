"""Settings from `WHEEL_*` variables, and channel secrets from the environment or a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from wheel.secrets import SecretNotFound, SecretStore
from wheel.settings import OPERATIONS, Settings, redact_url


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No WHEEL_* variable from the developer's shell reaches these tests."""
    for name in list(os.environ):
        if name.upper().startswith("WHEEL_"):
            monkeypatch.delenv(name)


# -- defaults and overrides --------------------------------------------------------------------


def test_defaults_point_at_local_services():
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/wheel"
    assert settings.redis_url.startswith("redis://127.0.0.1:6379/")
    assert settings.oms_url.get_secret_value().startswith("amqp://")
    assert "127.0.0.1:5672" in settings.oms_url.get_secret_value()


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("WHEEL_DATABASE_URL", "postgresql+psycopg://app@db.internal:6543/wheel_prod")
    monkeypatch.setenv("WHEEL_BRIDGE_BATCH_SIZE", "250")
    monkeypatch.setenv("WHEEL_QUEUE_RANGING", "PROD.RANGING")
    monkeypatch.setenv("WHEEL_HTTP_READ_TIMEOUT_S", "12.5")
    monkeypatch.setenv("WHEEL_SECRETS_DIR", "/etc/wheel/secrets")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://app@db.internal:6543/wheel_prod"
    assert settings.bridge_batch_size == 250
    assert settings.queue_ranging == "PROD.RANGING"
    assert settings.http_read_timeout_s == 12.5
    assert settings.secrets_dir == Path("/etc/wheel/secrets")


def test_environment_names_are_case_insensitive(monkeypatch):
    monkeypatch.setenv("wheel_sandbox_port", "8999")
    assert Settings().sandbox_port == 8999


def test_retry_delays_are_read_as_a_json_list(monkeypatch):
    monkeypatch.setenv("WHEEL_PUSH_RETRY_DELAYS_S", "[1, 2.5, 60]")
    assert Settings().push_retry_delays_s == [1.0, 2.5, 60.0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WHEEL_BRIDGE_BATCH_SIZE", "0"),
        ("WHEEL_BRIDGE_BATCH_SIZE", "lots"),
        ("WHEEL_MAX_MESSAGE_BYTES", "10"),
        ("WHEEL_SWEEPER_INTERVAL_S", "-1"),
        ("WHEEL_PUSH_RETRY_DELAYS_S", '["soon"]'),
    ],
)
def test_invalid_value_names_the_field(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert name.removeprefix("WHEEL_").lower() in str(info.value)


def test_retry_delays_that_are_not_json_name_the_field(monkeypatch):
    monkeypatch.setenv("WHEEL_PUSH_RETRY_DELAYS_S", "5,30")
    with pytest.raises(SettingsError, match="push_retry_delays_s"):
        Settings()


def test_unknown_wheel_variables_are_ignored(monkeypatch):
    monkeypatch.setenv("WHEEL_NO_SUCH_SETTING", "1")
    assert not hasattr(Settings(), "no_such_setting")


# -- redaction ---------------------------------------------------------------------------------


def test_redacted_masks_the_default_amqp_password():
    redacted = Settings().redacted()
    assert "guest:guest" not in str(redacted)
    assert redacted["oms_url"] == "amqp://guest:***@127.0.0.1:5672//"


def test_redacted_masks_passwords_in_every_url(monkeypatch):
    monkeypatch.setenv("WHEEL_DATABASE_URL", "postgresql+psycopg://app:pg-pass-1@db:5432/wheel")
    monkeypatch.setenv("WHEEL_OMS_URL", "amqp://oms:mq-pass-2@mq:5672/vhost")
    monkeypatch.setenv("WHEEL_SENTRY_DSN", "https://key-3@sentry.example/1")
    monkeypatch.setenv("WHEEL_SLACK_TOKEN", "xoxb-slack-4")
    redacted = Settings().redacted()
    text = str(redacted)
    for secret in ("pg-pass-1", "mq-pass-2", "key-3", "xoxb-slack-4"):
        assert secret not in text
    assert redacted["database_url"] == "postgresql+psycopg://app:***@db:5432/wheel"
    assert redacted["slack_token"] == "***"


def test_redacted_keeps_settings_that_are_not_secret():
    redacted = Settings().redacted()
    assert redacted["bridge_batch_size"] == 100
    assert redacted["redis_url"] == "redis://127.0.0.1:6379/0"


def test_redacted_masks_a_password_without_a_user_name(monkeypatch):
    monkeypatch.setenv("WHEEL_REDIS_URL", "redis://:s3cret@127.0.0.1:6379/0")
    assert "s3cret" not in str(Settings().redacted())


def test_redact_url_masks_user_and_password_urls():
    assert redact_url("redis://u:s3cret@127.0.0.1:6379/0") == "redis://u:***@127.0.0.1:6379/0"


# -- queues ------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
def test_queue_and_operation_round_trip(operation):
    settings = Settings()
    assert settings.operation_for_queue(settings.queue_for(operation)) == operation


def test_queue_follows_the_environment(monkeypatch):
    monkeypatch.setenv("WHEEL_QUEUE_PRICING", "MY.PRICES")
    settings = Settings()
    assert settings.queue_for("pricing") == "MY.PRICES"
    assert settings.operation_for_queue("MY.PRICES") == "pricing"
    assert settings.operation_for_queue("OMS.PRICING") is None


@pytest.mark.parametrize("queue", ["NO.SUCH.QUEUE", "OMS.BACKOUT", ""])
def test_unknown_queue_has_no_operation(queue):
    assert Settings().operation_for_queue(queue) is None


# -- secrets -----------------------------------------------------------------------------------


def test_env_name_is_upper_cased_with_non_alphanumerics_as_underscores():
    assert SecretStore.env_name("tatacliq-ua") == "WHEEL_SECRET_TATACLIQ_UA"
    assert SecretStore.env_name("flipkart.main v2") == "WHEEL_SECRET_FLIPKART_MAIN_V2"


def test_environment_wins_over_the_file(tmp_path):
    (tmp_path / "tatacliq-ua").write_text("from-file")
    store = SecretStore({"WHEEL_SECRET_TATACLIQ_UA": "from-env"}, tmp_path)
    assert store.get("tatacliq-ua") == "from-env"


def test_file_is_read_when_the_environment_has_none(tmp_path):
    (tmp_path / "tatacliq-ua").write_text("from-file")
    assert SecretStore({}, tmp_path).get("tatacliq-ua") == "from-file"


def test_values_are_stripped(tmp_path):
    (tmp_path / "file-ref").write_text("  tok-file \n")
    store = SecretStore({"WHEEL_SECRET_ENV_REF": "\ttok-env \n"}, tmp_path)
    assert store.get("file-ref") == "tok-file"
    assert store.get("env-ref") == "tok-env"


def test_missing_secret_names_both_places(tmp_path):
    with pytest.raises(SecretNotFound) as info:
        SecretStore({}, tmp_path).get("tatacliq-ua")
    assert "WHEEL_SECRET_TATACLIQ_UA" in str(info.value)
    assert str(tmp_path / "tatacliq-ua") in str(info.value)


@pytest.mark.parametrize("ref", ["../outside", "sub/secret", "/etc/passwd", ".hidden", ".."])
def test_refs_that_are_not_plain_names_are_refused(tmp_path, ref):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (tmp_path / "outside").write_text("leaked")
    (secrets_dir / "sub").mkdir()
    (secrets_dir / "sub" / "secret").write_text("leaked")
    (secrets_dir / ".hidden").write_text("leaked")
    with pytest.raises(SecretNotFound, match="plain name"):
        SecretStore({}, secrets_dir).get(ref)


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "tatacliq-ua").write_text(" \n")
    with pytest.raises(SecretNotFound, match="empty"):
        SecretStore({}, tmp_path).get("tatacliq-ua")


def test_whitespace_only_environment_secret_is_not_an_empty_secret(tmp_path):
    store = SecretStore({"WHEEL_SECRET_TATACLIQ_UA": "   "}, tmp_path)
    try:
        value = store.get("tatacliq-ua")
    except SecretNotFound:
        return
    assert value != ""
