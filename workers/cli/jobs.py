"""Scheduled pulls of orders and cancellations: their cron, on and off, and a run now."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from wheel.db.models import Schedule
from wheel.services.schedules import (
    ScheduleError,
    last_runs,
    run_now,
    set_cron,
    set_enabled,
    utcnow,
)
from wheel.timefmt import show
from workers import bootstrap
from workers.cli.output import ago, display_tz, fail, sessions_of, settings_of, table


@click.group()
def jobs() -> None:
    """Scheduled pulls of orders and cancellations, per channel (read by beat on its next tick).

    Cron expressions have 5 fields (minute hour day month weekday), or 6 with seconds last:
    '*/3 * * * *' is every 3 minutes, '* * * * * */10' every 10 seconds. Each schedule reads its
    expression in a time zone of its own (`jobs set --tz`, default WHEEL_DISPLAY_TZ, Asia/Kolkata
    unless set): '0 9 * * *' is 09:00 in that zone. Times are shown in WHEEL_DISPLAY_TZ, with the
    zone named; --json gives them in UTC.
    """


def _job_call(ctx: click.Context, action) -> object:

    try:
        with sessions_of(ctx).begin() as session:
            return action(session)
    except ScheduleError as exc:
        fail(str(exc))


@jobs.command("list")
@click.option("--channel", help="Only this channel.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def jobs_list(ctx: click.Context, channel: str | None, as_json: bool) -> None:
    """Every schedule: cron and its zone, on/off, last run (start, end, outcome), next run, watermark."""


    with sessions_of(ctx)() as session:
        query = select(Schedule).order_by(Schedule.channel_id, Schedule.job)
        rows = session.execute(query.where(Schedule.channel_id == channel) if channel else query).scalars().all()
        runs = last_runs(session, [r.id for r in rows])
    now = utcnow()
    if as_json:
        for r in rows:
            run = runs.get(r.id)
            click.echo(json.dumps({
                "channel": r.channel_id, "job": r.job, "cron": r.cron, "timezone": r.timezone, "enabled": r.enabled,
                "next_run_at": r.next_run_at and r.next_run_at.isoformat(),
                "last_started_at": r.last_started_at and r.last_started_at.isoformat(),
                "last_finished_at": r.last_finished_at and r.last_finished_at.isoformat(),
                "last_outcome": r.last_outcome, "last_error": r.last_error,
                "watermark": r.watermark and r.watermark.isoformat(), "resuming": r.cursor is not None,
                "last_run": run and {"id": run.id, "status": run.status, "trigger": run.trigger, "orders": run.orders,
                                     "cancellations": run.cancellations, "calls": run.calls},
            }))
        return
    if not rows:
        click.echo("no schedules" + (f" for {channel}" if channel else "") + " (channels get theirs when added)")
        return
    tz = display_tz(ctx)
    table(["channel", "job", "cron", "zone", "on", "last start", "last end", "outcome", "next run", "watermark", "last run"],
           [[r.channel_id, r.job, r.cron, r.timezone, "yes" if r.enabled else "no", ago(r.last_started_at, now, tz),
             ago(r.last_finished_at, now, tz), (r.last_outcome or "-") + (f": {r.last_error[:60]}" if r.last_error else ""),
             ago(r.next_run_at, now, tz) if r.enabled else "-", ago(r.watermark, now, tz),
             (f"{runs[r.id].orders} orders, {runs[r.id].cancellations} cancellations, {runs[r.id].calls} calls"
              if r.id in runs else "-")] for r in rows])


@jobs.command("set")
@click.argument("channel")
@click.argument("job", type=click.Choice(["orders", "cancellations"]))
@click.argument("cron")
@click.option("--tz", "tz_name", metavar="ZONE",
              help="The IANA time zone the expression is read in, e.g. Asia/Kolkata or UTC [default: WHEEL_DISPLAY_TZ].")
@click.pass_context
def jobs_set(ctx: click.Context, channel: str, job: str, cron: str, tz_name: str | None) -> None:
    """Set a job's cron expression, e.g. `wheelctl jobs set UA orders "0 9 * * *" --tz Asia/Kolkata`
    (09:00 India time)."""
    zone = tz_name or display_tz(ctx)

    def action(session):
        schedule = set_cron(session, channel, job, cron, tz_name=zone)
        return schedule.cron, schedule.next_run_at

    expression, next_run = _job_call(ctx, action)
    click.echo(f"{channel} {job}: {expression}; next run {show(next_run, display_tz(ctx))} (the cron read in {zone})")


def _jobs_enable(ctx, channel: str, job: str, enabled: bool) -> None:

    _job_call(ctx, lambda session: set_enabled(session, channel, job, enabled))
    click.echo(f"{channel} {job} {'enabled' if enabled else 'disabled'}")


@jobs.command("enable")
@click.argument("channel")
@click.argument("job", type=click.Choice(["orders", "cancellations"]))
@click.pass_context
def jobs_enable(ctx: click.Context, channel: str, job: str) -> None:
    """Switch a job on (its next run is the next cron time from now)."""
    _jobs_enable(ctx, channel, job, True)


@jobs.command("disable")
@click.argument("channel")
@click.argument("job", type=click.Choice(["orders", "cancellations"]))
@click.pass_context
def jobs_disable(ctx: click.Context, channel: str, job: str) -> None:
    """Switch a job off (a run in progress finishes)."""
    _jobs_enable(ctx, channel, job, False)


@jobs.command("run-now")
@click.argument("channel")
@click.argument("job", type=click.Choice(["orders", "cancellations"]))
@click.pass_context
def jobs_run_now(ctx: click.Context, channel: str, job: str) -> None:
    """Run a job now, outside its schedule (the workers must be running)."""

    run = _job_call(ctx, lambda session: run_now(session, channel, job))
    bootstrap.dispatcher(bootstrap.celery_app(settings_of(ctx))).run_job(run.run_id, run.marketplace)
    click.echo(f"run {run.run_id} sent: {channel} {job} (follow it with `wheelctl jobs list` or "
               f"`wheelctl events --name 'system.cron/*' --channel {channel}`)")


COMMANDS = [jobs]
