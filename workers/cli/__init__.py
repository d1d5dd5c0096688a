"""`wheelctl`: the operator's command line. Every command has --help.

One module per command group (see docs/architecture.md); each lists its commands in `COMMANDS`,
and what they share (settings, the database, errors, tables, JSON lines) is in `output.py`.
Everything they use is built in workers/bootstrap.py.
"""

from __future__ import annotations

import click

from wheel.settings import Settings
from workers import bootstrap
from workers.cli import admin, channels, demo, events, jobs, oms, orders, processes, resync
from workers.cli.output import fail


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")
@click.version_option(package_name="wheel-middleware")
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Wheel: run your marketplace business (Amazon India, Flipkart, Tata CLiQ) from your OMS.

    Settings come from WHEEL_* environment variables (see `wheelctl settings`).
    """
    try:
        ctx.obj = Settings()
    except Exception as exc:  # noqa: BLE001 - pydantic says which variable is wrong
        fail(f"invalid settings: {exc}")
    bootstrap.start_process(ctx.obj, "wheelctl", level=log_level)


for group in (admin, processes, channels, oms, events, jobs, orders, demo, resync):
    for command in group.COMMANDS:
        main.add_command(command)
