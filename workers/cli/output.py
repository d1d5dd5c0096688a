"""What every command shares: the settings and database of the run, errors, tables and JSON lines,
times as people read and type them, and asking before a command pushes to a live marketplace."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import click
from sqlalchemy.orm import Session, sessionmaker

from wheel import timefmt
from wheel.settings import Settings
from workers import bootstrap


def settings_of(ctx: click.Context) -> Settings:
    """The settings `wheelctl` read from the environment when it started."""
    return ctx.find_root().obj


def sessions_of(ctx: click.Context) -> sessionmaker[Session]:
    return bootstrap.sessions(settings_of(ctx), "wheelctl", pool_size=2)


def fail(message: str) -> NoReturn:
    """One red line on standard error, and exit status 2."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


def table(headers: list[str], rows: list[list], styles: list[str | None] | None = None) -> None:
    """Rows under headers; `styles`, one per row, colours a row (rich style names, e.g. "red")."""
    from rich.console import Console  # noqa: PLC0415 - the long-running commands print no table
    from rich.table import Table  # noqa: PLC0415 - the long-running commands print no table

    grid = Table(*headers, box=None, pad_edge=False, highlight=False)
    for index, row in enumerate(rows):
        grid.add_row(*[str(v) for v in row], style=styles[index] if styles else None)
    Console(width=200 if not sys.stdout.isatty() else None).print(grid)


def json_line(value: Any) -> None:
    """One JSON object on a line of its own (the --json form of every listing)."""
    click.echo(json.dumps(value, default=str))


def ago(when: datetime | None, now: datetime) -> str:
    """A time for a table: "in 5s" or "40s ago" when near, else the time in the display zone, named."""
    if when is None:
        return "-"
    seconds = (now - when).total_seconds()
    if abs(seconds) < 90:
        return f"in {-seconds:.0f}s" if seconds < 0 else f"{seconds:.0f}s ago"
    return display_time(when)


# -- times shown to people, and times people type -------------------------------------------------

# The zone people read times in: WHEEL_DISPLAY_TZ, set by `main` once the settings are read (a
# command runs in a process of its own, so one zone per process).
_DISPLAY_ZONE = ZoneInfo("Asia/Kolkata")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def use_display_zone(name: str) -> None:
    global _DISPLAY_ZONE
    _DISPLAY_ZONE = ZoneInfo(name)


def display_time(when: datetime | None, *, milliseconds: bool = False) -> str:
    """A UTC time as people read it: in the display zone, with the zone named (2026-12-01 20:05:03 IST,
    or 2026-12-01 20:05:03.123 IST to tell apart events of the same second)."""
    if when is None or not milliseconds:
        return timefmt.show(when, _DISPLAY_ZONE.key)
    return timefmt.show(when, _DISPLAY_ZONE.key, "%Y-%m-%d %H:%M:%S.%f")[:-3] + timefmt.show(when, _DISPLAY_ZONE.key, " %Z")


def parse_when(value: str, now: datetime | None = None) -> datetime:
    """What a person types for a time, as an aware datetime: an age (30m, 2h, 1d, 90s: that long
    before now), or an ISO time, read in the display zone unless it names its own (Z, +00:00).
    ValueError, saying what is accepted, for anything else."""
    now = now or datetime.now(timezone.utc)
    age = _AGE.match(value)
    if age:
        return now - timedelta(**{_AGE_UNITS[age.group(2)]: float(age.group(1))})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is neither an age (30m, 2h, 1d) nor an ISO time (2026-12-01T09:30, "
                         f"read in {_DISPLAY_ZONE.key}; add Z or +00:00 for UTC)") from None
    return when.replace(tzinfo=_DISPLAY_ZONE) if when.tzinfo is None else when


class When(click.ParamType):
    """A --since/--until/--to option: see `parse_when`."""

    name = "WHEN"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


WHEN = When()
WHEN_HELP = f"an age (30m, 2h, 1d) or an ISO time, read in {_DISPLAY_ZONE.key} unless it ends in Z or +hh:mm"


def confirm_or_refuse(question: str, yes: bool, *, flag: str = "--yes") -> None:
    """Ask before doing something to a live marketplace (or the OMS). `--yes` answers for the
    person; without it a command whose standard input is not a terminal (a script, a pipe) is
    refused rather than left to guess, and a person who says no stops it (exit status 1)."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question.rstrip('?')}: refused, as no one is at a terminal to confirm; add {flag} to do it "
             "from a script")
    if not click.confirm(question, default=False):
        click.echo("nothing done", err=True)
        sys.exit(1)
