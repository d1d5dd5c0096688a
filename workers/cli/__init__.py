"""`wheelctl`: the operator's command line. Every command has --help.

One module per command group (see docs/architecture.md); each lists its commands in `COMMANDS`,
and what they share (settings, the database, errors, tables, JSON lines) is in `output.py`.
Everything they use is built in workers/bootstrap.py.

A command's module is imported when that command runs, not before (`COMMAND_MODULES`): `wheelctl
bridge`, a long-running process of `make run`, then carries the bridge and not the whole command
line (rich, alembic, the status and doctor code), as Click describes for lazily loaded subcommands
(https://click.palletsprojects.com/en/stable/complex/#lazily-loading-subcommands).
"""

from __future__ import annotations

import importlib

import click

from wheel.settings import Settings
from workers import bootstrap
from workers.cli.output import fail, use_display_zone

# Every command, and the module of workers/cli/ whose COMMANDS holds it.
COMMAND_MODULES = {
    "settings": "admin", "migrate": "admin", "services": "admin", "sweep": "admin",
    "channels": "channels", "demo": "demo", "doctor": "doctor", "events": "events", "jobs": "jobs",
    "messages": "messages", "oms": "oms", "inbox": "oms", "orders": "orders",
    "bridge": "processes", "sandbox": "processes", "flower": "processes",
    "resync": "resync", "status": "status",
}
# The doctor reports invalid settings as its first check, rather than stop on them.
DOCTOR = "doctor"


class WheelGroup(click.Group):
    """Runs a command; when it fails because Postgres, Redis or the OMS broker does not answer, says
    so in one line (the service, where, how to start it: workers/checks.py) and exits 2, instead
    of a traceback. Every other error is left as it is. Commands are loaded by name, on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMAND_MODULES:
            module = importlib.import_module(f"workers.cli.{COMMAND_MODULES[name]}")
            for command in module.COMMANDS:
                self.commands.setdefault(command.name, command)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from workers.checks import service_down  # noqa: PLC0415 - only when a command fails (it loads psycopg)

            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            line = service_down(exc, settings, _transport_errors(settings)) if settings is not None else None
            if line is None:
                raise
            fail(line)


def _transport_errors(settings: Settings) -> tuple[type[BaseException], ...]:
    """The OMS transport's connection errors (AMQP's are kombu's for its URL, IBM MQ's its own)."""
    try:
        return tuple(bootstrap.transport(settings).connection_errors)
    except Exception:  # noqa: BLE001 - a transport that cannot even be built has no errors to name
        return ()


@click.group(cls=WheelGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
        if ctx.invoked_subcommand == DOCTOR:
            ctx.obj = exc  # the doctor reports it as its first check
            return
        fail(f"invalid settings: {exc}")
    use_display_zone(ctx.obj.display_tz)
    bootstrap.start_process(ctx.obj, "wheelctl", level=log_level)
