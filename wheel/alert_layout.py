"""What an alert looks like in Slack: one message per alert (or per burst of the same alert).

The message is an attachment coloured by level (https://api.slack.com/reference/messaging/attachments)
holding Block Kit sections (https://api.slack.com/reference/block-kit/blocks#section): the event's
name and error, the fields Channel Name, Channel Id, Event Id(s), Parent Id, Count and the SKUs or
order ids involved, the event's payload as a JSON code block cut to a readable size, and last the
`wheelctl` command that shows or fixes the cause. The top-level `text` is the notification's
fallback.

Everything taken from an event (OMS messages, marketplace answers) is escaped as Slack asks: `&`,
`<` and `>` and only these (https://api.slack.com/reference/surfaces/formatting#escaping), in the
fields and inside code blocks too, so nothing can become a mention (`<!channel>`) or a link. Event
payloads hold no credentials (wheel/secrets.py); as a second line of defence, values under
credential-like keys are masked and the Slack settings' own secrets are replaced wherever they
appear.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wheel.observability import SECRET_KEYS

COLOURS = {"error": "#d00000", "warning": "#daa038", "info": "#439fe0", "debug": "#9e9e9e"}
MARKETPLACE_NAMES = {"amazon": "Amazon India", "flipkart": "Flipkart", "tatacliq": "Tata CLiQ"}

# The command that shows or fixes the cause, by event name; the default opens the event's tree
# (the OMS message and everything it caused). Placeholders: {id}, {parent}, {channel}, {inbox}.
COMMANDS = {
    "system/channel-blocked": "wheelctl channels list",
    "system/parsing-failed": "wheelctl inbox show {inbox}",
    "system/message-backed-out": "wheelctl events --name system/message-backed-out",
    "system/bridge-stalled": "wheelctl services check",
    "system/oms-publish-failed": "wheelctl orders list --status ready",
    "system.cron/failed": "wheelctl jobs list --channel {channel}",
    "system.cron/warning": "wheelctl jobs list --channel {channel}",
    "order/failed": "wheelctl orders list --status failed --channel {channel}",
    "order/failed-after-sent": "wheelctl orders list --channel {channel}",
    "cancellation/expired": "wheelctl orders list --status held --channel {channel}",
}
DEFAULT_COMMAND = "wheelctl events --parent {parent}"

MAX_LISTED = 20  # SKUs or order ids named in the field; the payload has the rest
MAX_ERROR_CHARS = 1000
MAX_FIELD_CHARS = 500
MASK = "***"
SECRET_KEY_NAMES = frozenset(SECRET_KEYS)


@dataclass(frozen=True)
class AlertEvent:
    id: int
    name: str
    level: str
    parent_id: int | None = None
    channel_id: str | None = None
    marketplace: str | None = None
    inbox_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SlackMessage:
    text: str
    attachments: list[dict[str, Any]]


def escape(text: str) -> str:
    """Text Slack shows as it is (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_message(events: Sequence[AlertEvent], *, count: int | None = None, channel_name: str | None = None,
                  first_ids: int = 5, payload_chars: int = 1500, window_s: float | None = None,
                  secrets: Iterable[str] = ()) -> SlackMessage:
    """One message for `events` (the first few of a burst, oldest first) standing for `count` alerts
    of the same name and channel."""
    first = events[0]
    count = count or len(events)
    scrub = _Scrubber([s for s in secrets if s])
    payload = first.payload or {}
    error = str(payload.get("error") or payload.get("action") or payload.get("reason") or "")
    where = f" on channel {first.channel_id}" if first.channel_id else ""
    times = f" ×{count}" if count > 1 else ""
    within = f" within {window_s:g} s" if count > 1 and window_s else ""
    headline = _escaped(scrub(f"{first.name}{times}{where}{within}" + (f": {error}" if error else "")), MAX_ERROR_CHARS)

    ids = [str(e.id) for e in events[:first_ids]]
    more = count - len(ids)
    fields = [
        ("Channel Name", channel_name or (first.marketplace and MARKETPLACE_NAMES.get(first.marketplace)) or "-"),
        ("Channel Id", first.channel_id or "-"),
        ("Event Ids" if count > 1 else "Event Id", ", ".join(ids) + (f" and {more} more" if more > 0 else "")),
        ("Parent Id", str(first.parent_id) if first.parent_id is not None else "-"),
        ("Count", str(count)),
    ]
    label, involved = _involved(events)
    if involved:
        fields.append((label, involved))
    body = json.dumps(_masked(payload), indent=1, sort_keys=True, ensure_ascii=False, default=str)
    command = _escaped(scrub(command_for(first)), MAX_FIELD_CHARS)

    blocks: list[dict[str, Any]] = [
        _section(f"*{headline}*"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{_escaped(scrub(value), MAX_FIELD_CHARS)}"}
                                       for name, value in fields]},
        _section("*Payload*" + (" (of the first)" if count > 1 else "") + "\n```"
                 + _escaped(_fenced(scrub(body)), payload_chars) + "```"),
        _section(f"Shows or fixes the cause: `{command}`"),
    ]
    fallback = f":rotating_light: {headline} (event {first.id}; {command})"
    return SlackMessage(text=fallback, attachments=[{"color": COLOURS.get(first.level, COLOURS["error"]),
                                                     "fallback": fallback, "blocks": blocks}])


def log_line(message: SlackMessage) -> str:
    """The alert as one log line (the fallback text, unescaped back for reading)."""
    return message.text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def command_for(event: AlertEvent) -> str:
    template = COMMANDS.get(event.name, DEFAULT_COMMAND)
    values = {"id": event.id, "parent": event.parent_id or event.id,
              "channel": shlex.quote(event.channel_id) if event.channel_id else None, "inbox": event.inbox_id}
    needed = [key for key in values if "{" + key + "}" in template]
    if any(values[key] is None for key in needed):
        template = DEFAULT_COMMAND
    return template.format(**values)


def _involved(events: Sequence[AlertEvent]) -> tuple[str, str]:
    """The SKUs (or else the order ids) the events name, without repeats, the first MAX_LISTED."""
    skus: list[str] = []
    orders: list[str] = []
    for event in events:
        payload = event.payload or {}
        for item in payload.get("items") or []:
            if isinstance(item, dict) and item.get("sku") is not None:
                skus.append(str(item["sku"]))
        skus += [str(s) for s in payload.get("skus") or [] if s is not None]
        if payload.get("sku") is not None:
            skus.append(str(payload["sku"]))
        if payload.get("order_id") is not None:
            orders.append(str(payload["order_id"]))
        orders += [str(o) for o in payload.get("order_ids") or []]
    label, names = ("SKUs", skus) if skus else ("Order Ids", orders)
    names = list(dict.fromkeys(names))
    if not names:
        return label, ""
    listed = ", ".join(names[:MAX_LISTED])
    return label, listed + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if str(k).lower() in SECRET_KEY_NAMES and v else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


class _Scrubber:
    def __init__(self, secrets: list[str]):
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def _escaped(text: str, limit: int) -> str:
    """`text` escaped, cut so that the escaped text is at most `limit` characters (Slack's limits
    count what it receives: 3,000 a section, 2,000 a field), never inside an entity."""
    out, size = [], 0
    for position, char in enumerate(text):
        piece = escape(char)
        if size + len(piece) > limit:
            return "".join(out) + f"… (cut: {len(text) - position:,} more characters)"
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _fenced(text: str) -> str:
    # Three backticks inside the payload would end the code block early: broken up by a zero-width space.
    return text.replace("```", "`\u200b`\u200b`")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
