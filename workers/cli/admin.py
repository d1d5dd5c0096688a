"""Looking after Wheel itself: its settings, its database schema, the services it needs, the sweeper."""

from __future__ import annotations

import sys

import click

from wheel.db import migrate
from wheel.services import sweeper
from workers import bootstrap
from workers.checks import check_services
from workers.cli.output import sessions_of, settings_of


@click.command()
@click.pass_context
def settings(ctx: click.Context) -> None:
    """Print the settings in force (passwords masked)."""
    for name, value in settings_of(ctx).redacted().items():
        click.echo(f"WHEEL_{name.upper()}={value}")


@click.command("migrate")
@click.option("--check", is_flag=True, help="Only check that the models and migrations agree.")
@click.pass_context
def migrate_command(ctx: click.Context, check: bool) -> None:
    """Create the database if it is missing and bring its schema up to date."""
    url = settings_of(ctx).database_url
    if check:
        migrate.check(url)
        click.echo("models and migrations agree")
        return
    if migrate.ensure_database(url):
        click.echo("created the database")
    migrate.upgrade(url)
    click.echo("database schema is up to date")


@click.group()
def services() -> None:
    """The local services Wheel needs: Postgres, Redis, RabbitMQ."""


@services.command("check")
@click.pass_context
def services_check(ctx: click.Context) -> None:
    """Check that Postgres, Redis and RabbitMQ answer; say how to start any that does not."""
    results = check_services(settings_of(ctx))
    for result in results:
        click.echo(result.line())
    if not all(r.ok for r in results):
        sys.exit(1)


@click.command("sweep")
@click.pass_context
def sweep_command(ctx: click.Context) -> None:
    """Re-send the tasks of work still pending past its deadline (beat does this periodically)."""
    settings = settings_of(ctx)
    dispatch = bootstrap.dispatcher(bootstrap.celery_app(settings))
    report = sweeper.sweep(sessions_of(ctx), deadline_s=settings.sweeper_deadline_s,
                           send_process=dispatch.process_message, send_sync=dispatch.sync)
    click.echo(f"re-sent {report.inbox} message tasks and {report.channels} channel syncs")


COMMANDS = [settings, migrate_command, services, sweep_command]
