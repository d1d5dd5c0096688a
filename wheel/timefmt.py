"""Times and ages as people read them: in the display zone (WHEEL_DISPLAY_TZ), the zone named.

Stored times are UTC (timestamptz); only what is shown to people is converted here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo


def local(when: datetime | None, tz: str) -> str:
    """'2026-12-01 19:48:24 IST' (the zone's abbreviation, or its offset where it has none)."""
    if when is None:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    shown = when.astimezone(ZoneInfo(tz))
    name = shown.tzname() or ""
    if not name or name[0] in "+-":
        name = shown.strftime("UTC%z")
    return f"{shown:%Y-%m-%d %H:%M:%S} {name}"


def age(seconds: float | None) -> str:
    """A duration in its two largest units: '45s', '3m 20s', '2h 5m', '3d 4h'."""
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
