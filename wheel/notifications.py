"""Alerts for the ops team: Slack when configured, the log always.

An alert names what happened, on which channel, the error, and the event to open in the
dashboard. It carries nothing from the channel's credentials.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from wheel.settings import Settings

log = logging.getLogger("wheel.alerts")


class Alerter(Protocol):
    def send(self, text: str) -> None: ...


class LogAlerter:
    def send(self, text: str) -> None:
        log.error("ALERT %s", text)


class SlackAlerter:
    def __init__(self, token: str, channel: str, timeout_s: int = 10):
        from slack_sdk import WebClient

        self._client = WebClient(token=token, timeout=timeout_s)
        self._channel = channel

    def send(self, text: str) -> None:
        log.error("ALERT %s", text)
        self._client.chat_postMessage(channel=self._channel, text=text)


def alerter_from_settings(settings: Settings) -> Alerter:
    if settings.slack_token is not None:
        return SlackAlerter(settings.slack_token.get_secret_value(), settings.slack_channel)
    return LogAlerter()


def alert_text(event: dict[str, Any], dashboard_url: str) -> str:
    where = f" on channel {event['channel_id']}" if event.get("channel_id") else ""
    # An error says what went wrong; a warning that needs someone (a buyer's cancellation request) says what to do.
    error = event.get("payload", {}).get("error") or event.get("payload", {}).get("action", "")
    return (
        f":rotating_light: {event['name']}{where}: {error}\n"
        f"event {event['id']} (parent {event.get('parent_id') or '-'}): "
        f"`wheelctl events --parent {event.get('parent_id') or event['id']}` or {dashboard_url}"
    )
