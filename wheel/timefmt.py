"""Times as a person reads them: in the display zone (WHEEL_DISPLAY_TZ, India's by default), with
the zone named. Storage, JSON output and the logs stay in UTC; only what is shown to a person
(wheelctl tables, alert text) goes through here.

Zones are IANA names (https://www.iana.org/time-zones), read with the standard library's zoneinfo.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TZ = "Asia/Kolkata"
# Date, time and the zone's abbreviation: "2026-12-01 14:05:03 IST".
DEFAULT_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


@lru_cache(maxsize=64)
def zone(tz_name: str) -> ZoneInfo:
    """The zone of an IANA name; ValueError (saying what to give) for a name that is not one."""
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz_name!r}: give an IANA name such as 'Asia/Kolkata' or 'UTC'") from exc


def local(dt: datetime, tz_name: str) -> datetime:
    """`dt` in the zone `tz_name`. A naive `dt` is taken to be UTC (how Wheel stores times)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(zone(tz_name))


def show(dt: datetime | None, tz_name: str, fmt: str = DEFAULT_FORMAT) -> str:
    """`dt` as text in the zone `tz_name` (`fmt` is strftime's; keep %Z so the zone is named);
    "-" for no time."""
    if dt is None:
        return "-"
    return local(dt, tz_name).strftime(fmt)


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
