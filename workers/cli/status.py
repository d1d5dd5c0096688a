"""`wheelctl status`: Wheel on one screen, for the ops team's first look."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from wheel.services.status import jsonable, snapshot
from wheel.timefmt import age, show
from workers import bootstrap
from workers.cli.output import sessions_of, settings_of
from workers.health import backout_depth, celery_queues


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object (times in UTC, ISO 8601) instead of tables.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """One screen: per channel what has not reached the marketplace, the last pulls and the held
    cancellations; the Celery queues; the outboxes; beat's last tick; the open health alerts.

    Times are shown in WHEEL_DISPLAY_TZ (default Asia/Kolkata).
    """
    settings = settings_of(ctx)
    with sessions_of(ctx)() as session:
        view = snapshot(session)
    stats = celery_queues(bootstrap.celery_app(settings), settings)
    view["queues"] = None if stats is None else {
        name: {"depth": stat.depth, "consumers": stat.consumers} for name, stat in stats.items()}
    view["backout"] = {"queue": settings.queue_backout, "depth": backout_depth(settings)}
    if as_json:
        click.echo(json.dumps(jsonable(view)))
        return
    tz = settings.display_tz

    def when(at, seconds) -> str:
        return "-" if at is None else f"{show(at, tz)} ({age(seconds)} ago)"

    console = Console(width=200 if not sys.stdout.isatty() else None)
    console.print(f"Wheel status at {show(view['at'], tz)}")
    table = Table("channel", "marketplace", "on", "unsynced SKUs", "oldest unsynced", "held cancellations",
                  title="Channels", title_justify="left", box=None, pad_edge=False)
    for c in view["channels"]:
        table.add_row(c["id"], c["marketplace"], ("yes" if c["enabled"] else "no") + (" (shadow)" if c["shadow"] else ""),
                      str(c["unsynced"]),
                      f"{c['oldest_unsynced_sku']}, {age(c['oldest_unsynced_age_s'])}" if c["unsynced"] else "-",
                      f"{c['held_cancellations']} since {show(c['held_since'], tz)}" if c["held_cancellations"] else "0")
    console.print(table)
    table = Table("channel", "job", "on", "last start", "last end", "outcome", "next run",
                  title="Pulls", title_justify="left", box=None, pad_edge=False)
    for c in view["channels"]:
        for p in c["pulls"]:
            table.add_row(c["id"], p["job"], "yes" if p["enabled"] else "no", show(p["last_started_at"], tz),
                          show(p["last_finished_at"], tz),
                          (p["outcome"] or "-") + (f": {p['error'][:80]}" if p["error"] else ""),
                          show(p["next_run_at"], tz) if p["enabled"] else "-")
    console.print(table)
    table = Table("queue", "depth", "consumers", title="Celery queues", title_justify="left", box=None, pad_edge=False)
    for name, q in (view["queues"] or {}).items():
        table.add_row(name, str(q["depth"]),
                      str(q["consumers"]) + ("  <- no consumer" if q["depth"] and not q["consumers"] else ""))
    console.print(table if view["queues"] is not None else "Celery queues: could not be read (is Redis up?)")
    for name, o in view["outboxes"].items():
        console.print(f"Outbox {name}: {o['waiting']} waiting" + (f", oldest {when(o['oldest'], o['oldest_age_s'])}"
                                                                 if o["waiting"] else ""))
    depth = view["backout"]["depth"]
    console.print(f"OMS backout queue {settings.queue_backout}: "
                  + ("could not be counted (is the OMS broker up?)" if depth is None else f"{depth} messages"))
    console.print(f"Beat: last tick {when(view['beat']['last_tick'], view['beat']['age_s'])}")
    table = Table("opened", "check", "subject", "what", "look", title=f"Open health alerts: {len(view['alerts'])}",
                  title_justify="left", box=None, pad_edge=False)
    for a in view["alerts"]:
        table.add_row(when(a["opened_at"], a["open_for_s"]), a["name"], a["subject"], a["message"] or "", a["look"] or "")
    console.print(table)


COMMANDS = [status]
