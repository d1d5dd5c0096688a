"""Alerts for the ops team: Slack when configured, the log always.

An alert names what happened, on which channel, the error, and the event to open in the
dashboard. It carries nothing from the channel's credentials, and reaches Slack as plain text.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from wheel.settings import Settings

log = logging.getLogger("wheel.alerts")

SLACK_API_URL = "https://slack.com/api/"


class Alerter(Protocol):
    def send(self, text: str) -> None: ...


class LogAlerter:
    def send(self, text: str) -> None:
        log.error("ALERT %s", text)


class SlackAlerter:
    def __init__(self, token: str, channel: str, timeout_s: int = 10, base_url: str = SLACK_API_URL):
        from slack_sdk import WebClient

        self._client = WebClient(token=token, timeout=timeout_s, base_url=base_url)
        self._channel = channel

    def send(self, text: str) -> None:
        log.error("ALERT %s", text)
        # Plain text only: no link previews fetched for a URL an OMS message or a marketplace put
        # in an error.
        self._client.chat_postMessage(channel=self._channel, text=slack_escape(text), unfurl_links=False,
                                      unfurl_media=False)


def slack_escape(text: str) -> str:
    """Text Slack shows as it is. Slack reads `<...>` as a link or a mention (`<!channel>` pings the
    whole channel) and `&` as the start of an escape; an alert carries text from OMS messages and
    marketplace answers (item ids, error messages), so these three are escaped, and only these
    (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
