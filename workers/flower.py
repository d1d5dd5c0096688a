"""Flower, Celery's monitor, started with Wheel's settings (`wheelctl flower`).

It listens on WHEEL_FLOWER_ADDRESS (127.0.0.1 by default) and asks for HTTP basic auth with
WHEEL_FLOWER_BASIC_AUTH, or else the secret `flower-basic-auth` (wheel/secrets.py). Without either
it starts only on a loopback address: anything else would show every worker and task to whoever
reaches the port.

The credentials go to Flower in its environment (FLOWER_BASIC_AUTH, which Flower reads as its
basic_auth option: https://flower.readthedocs.io/en/latest/config.html, "Environment variables"
and "basic_auth"), never on its command line, where `ps` shows them to every user.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from wheel.secrets import SecretNotFound, SecretStore
from wheel.settings import Settings

SECRET_REF = "flower-basic-auth"
# Flower's options that Wheel's settings decide; an inherited value would override or confuse them.
FLOWER_ENV = ("FLOWER_BASIC_AUTH", "FLOWER_ADDRESS", "FLOWER_PORT", "FLOWER_AUTH")


class FlowerConfigError(ValueError):
    """The settings do not allow Flower to start; the message says why (it never quotes a password)."""


@dataclass(frozen=True)
class FlowerLaunch:
    argv: list[str]
    env: dict[str, str]
    address: str
    port: int
    authenticated: bool
    users: tuple[str, ...]

    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def basic_auth(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """The user:password pairs Flower asks for, from the setting or the secret; None when neither is set."""
    if settings.flower_basic_auth is not None and settings.flower_basic_auth.get_secret_value().strip():
        value, source = settings.flower_basic_auth.get_secret_value().strip(), "WHEEL_FLOWER_BASIC_AUTH"
    else:
        try:
            value = SecretStore(environ, settings.secrets_dir).get(SECRET_REF)
        except SecretNotFound:
            return None
        source = f"the secret {SECRET_REF}"
    for pair in value.split(","):
        user, sep, password = pair.partition(":")
        if not sep or not user.strip() or not password:
            # Flower splits the value on commas: a password cannot contain one.
            raise FlowerConfigError(f"{source} must be user:password (several separated by commas; "
                                    "no comma inside a password)")
    return value


def flower_launch(settings: Settings, environ: Mapping[str, str], python: str = sys.executable) -> FlowerLaunch:
    """The command and environment that run Flower on Wheel's Celery app with these settings."""
    auth = basic_auth(settings, environ)
    address = settings.flower_address
    if auth is None and not is_loopback(address):
        raise FlowerConfigError(
            f"Flower would listen on {address} without a password: set WHEEL_FLOWER_BASIC_AUTH (user:password) "
            f"or the secret {SECRET_REF}, or listen on 127.0.0.1 (WHEEL_FLOWER_ADDRESS)")
    env = {name: value for name, value in environ.items() if name not in FLOWER_ENV}
    if auth is not None:
        env["FLOWER_BASIC_AUTH"] = auth
    argv = [python, "-m", "celery", "-A", "workers.app", "flower", f"--address={address}",
            f"--port={settings.flower_port}"]
    users = tuple(pair.partition(":")[0] for pair in auth.split(",")) if auth else ()
    return FlowerLaunch(argv, env, address, settings.flower_port, auth is not None, users)
