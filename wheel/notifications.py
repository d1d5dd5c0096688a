"""Posting alerts to Slack (slack-sdk), or to the log when Slack is not configured.

Two ways in, both Slack's own: a bot token and a channel, through the Web API's chat.postMessage
(https://api.slack.com/methods/chat.postMessage), or an incoming webhook
(https://api.slack.com/messaging/webhooks). Every call has a timeout (WHEEL_SLACK_TIMEOUT_S), and
slack-sdk's own retries are off: a post that fails raises `NotDelivered`, and the alerts outbox
(wheel/services/alerts.py) tries again later, so one slow Slack never holds a worker for long. A
429 raises `Throttled` with Slack's Retry-After (https://api.slack.com/docs/rate-limits): the
alert waits that long. Nothing here logs a token or the webhook's URL, which is its secret.

slack-sdk is imported by the senders that post, not with this module: every Wheel process
imports it (through the composition root), and without Slack configured none needs slack-sdk's
modules in its memory.
"""

from __future__ import annotations

import logging
from typing import Protocol

from wheel.alert_layout import SlackMessage, log_line
from wheel.secrets import SecretNotFound, SecretStore
from wheel.settings import Settings

log = logging.getLogger("wheel.alerts")

# Slack asks clients that are not told otherwise to wait a minute after a 429.
DEFAULT_RETRY_AFTER_S = 60.0


class NotDelivered(Exception):
    """Slack did not take the message (down, refused it, or did not answer in time)."""


class Throttled(NotDelivered):
    def __init__(self, retry_after_s: float):
        super().__init__(f"Slack answered 429 (rate limited): retry after {retry_after_s:g} s")
        self.retry_after_s = retry_after_s


class Sender(Protocol):
    #: Values that must never appear in a message (this sender's own secrets).
    secrets: tuple[str, ...]

    def post(self, message: SlackMessage) -> None: ...


class LogSender:
    """No Slack configured: the alert goes to the log only."""

    secrets: tuple[str, ...] = ()

    def post(self, message: SlackMessage) -> None:
        log.error("ALERT %s", log_line(message))


class WebApiSender:
    def __init__(self, token: str, channel: str, *, timeout_s: float, base_url: str = "https://slack.com/api/"):
        from slack_sdk import WebClient  # noqa: PLC0415 - only a process that posts to Slack loads slack-sdk

        self._client = WebClient(token=token, base_url=base_url, timeout=max(1, round(timeout_s)), retry_handlers=[])
        self._channel = channel
        self.secrets = (token,)

    def post(self, message: SlackMessage) -> None:
        from slack_sdk.errors import SlackApiError, SlackClientError  # noqa: PLC0415 - only a process that posts to Slack loads slack-sdk

        log.error("ALERT %s", log_line(message))
        try:
            # No link previews fetched for a URL an OMS message or a marketplace put in an error.
            self._client.chat_postMessage(channel=self._channel, text=message.text, attachments=message.attachments,
                                          unfurl_links=False, unfurl_media=False)
        except SlackApiError as exc:
            response = exc.response
            if response.status_code == 429:
                raise Throttled(retry_after(response.headers)) from None
            raise NotDelivered(f"Slack answered {response.status_code}: {response.get('error', '')}") from None
        except (SlackClientError, OSError) as exc:  # URLError, timeouts, refused connections
            raise NotDelivered(f"Slack could not be reached: {_reason(exc)}") from None


class WebhookSender:
    def __init__(self, url: str, *, timeout_s: float):
        from slack_sdk.webhook import WebhookClient  # noqa: PLC0415 - only a process that posts to Slack loads slack-sdk

        self._client = WebhookClient(url, timeout=max(1, round(timeout_s)), retry_handlers=[])
        self.secrets = (url,)

    def post(self, message: SlackMessage) -> None:
        from slack_sdk.errors import SlackClientError  # noqa: PLC0415 - only a process that posts to Slack loads slack-sdk

        log.error("ALERT %s", log_line(message))
        try:
            response = self._client.send(text=message.text, attachments=message.attachments, unfurl_links=False,
                                         unfurl_media=False)
        except (SlackClientError, OSError) as exc:
            raise NotDelivered(f"Slack's webhook could not be reached: {_reason(exc)}") from None
        if response.status_code == 429:
            raise Throttled(retry_after(response.headers))
        if response.status_code != 200:
            raise NotDelivered(f"Slack's webhook answered {response.status_code}: {str(response.body)[:200]}")


def retry_after(headers) -> float:
    """Seconds from a Retry-After header (slack-sdk keeps headers as given, or as lists of values)."""
    lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
    value = lowered.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S


def slack_secrets(settings: Settings, secrets: SecretStore) -> tuple[str | None, str | None]:
    """Slack's bot token and incoming-webhook URL: each the setting, or else its secret."""
    return (_secret(settings.slack_token, secrets, "slack-token"),
            _secret(settings.slack_webhook_url, secrets, "slack-webhook-url"))


def sender_from_settings(settings: Settings, secrets: SecretStore) -> Sender:
    token, url = slack_secrets(settings, secrets)
    if token:
        return WebApiSender(token, settings.slack_channel, timeout_s=settings.slack_timeout_s,
                            base_url=settings.slack_api_url)
    if url:
        return WebhookSender(url, timeout_s=settings.slack_timeout_s)
    return LogSender()


def _secret(value, secrets: SecretStore, ref: str) -> str | None:
    if value is not None and value.get_secret_value().strip():
        return value.get_secret_value().strip()
    try:
        return secrets.get(ref)
    except SecretNotFound:
        return None


def _reason(exc: Exception) -> str:
    # urllib's URLError carries the reason without the URL; never the request (it holds the token).
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason if reason is not None else exc}"
