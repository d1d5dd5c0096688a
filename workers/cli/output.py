"""What every command shares: the settings and database of the run, errors, tables and JSON lines."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from wheel.settings import Settings
from wheel.timefmt import show
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


def table(headers: list[str], rows: list[list]) -> None:
    grid = Table(*headers, box=None, pad_edge=False, highlight=False)
    for row in rows:
        grid.add_row(*[str(v) for v in row])
    Console(width=200 if not sys.stdout.isatty() else None).print(grid)


def json_line(value: Any) -> None:
    """One JSON object on a line of its own (the --json form of every listing)."""
    click.echo(json.dumps(value, default=str))


def display_tz(ctx: click.Context) -> str:
    """The zone times are shown in (WHEEL_DISPLAY_TZ); storage and --json stay UTC."""
    return settings_of(ctx).display_tz


def ago(when: datetime | None, now: datetime, tz_name: str) -> str:
    """A time for a table: "in 5s" or "40s ago" when near, else the time in `tz_name`, zone named."""
    if when is None:
        return "-"
    seconds = (now - when).total_seconds()
    if abs(seconds) < 90:
        return f"in {-seconds:.0f}s" if seconds < 0 else f"{seconds:.0f}s ago"
    return show(when, tz_name)
