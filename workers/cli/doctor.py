"""`wheelctl doctor`: every service, setting, queue, credential and process Wheel needs, checked,
with the fix for whatever is not fine (the checks: workers/doctor.py)."""

from __future__ import annotations

import json
import logging
import os
import sys

import click
from pydantic import ValidationError

from wheel.services.doctor import FAIL, OK, WARN, Check, overall
from workers import doctor as examination
from workers.cli import DOCTOR
from workers.cli.output import table

STYLES = {OK: "green", WARN: "yellow", FAIL: "red"}


@click.command(DOCTOR)
@click.option("--json", "as_json", is_flag=True, help='One JSON object: {"status", "checks": [{name, status, detail, fix}]}.')
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check everything Wheel needs and say how to fix what is not fine.

    Settings (and each enabled channel's secret), Postgres and its schema, Redis, the OMS
    transport and every OMS queue, each enabled channel's credentials (one cheap authenticated
    call), Slack, Sentry, beat's last tick, and a worker on every queue. Nothing is consumed,
    put or posted. Each check gives up after 5 s. Exit status 1 when any check fails.
    """
    # Alembic says at INFO which dialect it uses each time the schema's revision is read.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    settings = ctx.find_root().obj
    if isinstance(settings, Exception):
        checks = [Check("settings", FAIL, f"do not load: {_settings_error(settings)}",
                        "correct that WHEEL_* variable (`wheelctl settings` lists them once they load)")]
    else:
        checks = examination.run(settings, os.environ)
    verdict = overall(checks)
    if as_json:
        click.echo(json.dumps({"status": verdict, "checks": [c.as_json() for c in checks]}))
    else:
        table(["check", "status", "detail", "fix"], [[c.name, c.status, c.detail, c.fix] for c in checks],
              [STYLES[c.status] for c in checks])
        failed = sum(c.status == FAIL for c in checks)
        warned = sum(c.status == WARN for c in checks)
        click.echo(f"\n{len(checks)} checks: {failed} failed, {warned} to look at" if failed or warned
                   else f"\nall {len(checks)} checks ok")
    if verdict == FAIL:
        sys.exit(1)


def _settings_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"WHEEL_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


COMMANDS = [doctor]
