"""Scheduled pulls of orders and cancellations: their cron, on and off, and a run now."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from wheel.db.models import Channel, Schedule
from wheel.services.order_recovery import rewind
from wheel.services.schedules import (
    ScheduleError,
    last_runs,
    run_now,
    set_cron,
    set_enabled,
    utcnow,
)
from workers import bootstrap
from workers.cli.output import WHEN, WHEN_HELP, ago, display_time, fail, sessions_of, settings_of, table


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
    table(["channel", "job", "cron", "zone", "on", "last start", "last end", "outcome", "next run", "watermark", "last run"],
           [[r.channel_id, r.job, r.cron, r.timezone, "yes" if r.enabled else "no", ago(r.last_started_at, now),
             ago(r.last_finished_at, now), (r.last_outcome or "-") + (f": {r.last_error[:60]}" if r.last_error else ""),
             ago(r.next_run_at, now) if r.enabled else "-", ago(r.watermark, now),
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
    zone = tz_name or settings_of(ctx).display_tz

    def action(session):
        schedule = set_cron(session, channel, job, cron, tz_name=zone)
        return schedule.cron, schedule.next_run_at

    expression, next_run = _job_call(ctx, action)
    click.echo(f"{channel} {job}: {expression}; next run {display_time(next_run)} (the cron read in {zone})")


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


@jobs.command("rewind")
@click.argument("channel")
@click.argument("job", type=click.Choice(["orders", "cancellations"]))
@click.option("--to", "to", type=WHEN, required=True, help=f"The new watermark: {WHEN_HELP}.")
@click.pass_context
def jobs_rewind(ctx: click.Context, channel: str, job: str, to) -> None:
    """Set a pull's watermark back, so that its next run reads the marketplace again from then.

    For orders the marketplace had late, or a pull that stored less than it should. Safe: orders
    are stored once per (channel, order id) and cancelled lines once per line, so what is read
    again and was stored before is not sent to the OMS twice. Refused for a time in the future,
    a time after the watermark, and while a pull of the job runs.
    """
    settings = settings_of(ctx)
    sessions = sessions_of(ctx)
    with sessions() as session:
        found = session.get(Channel, channel)
    if found is None:
        fail(f"no channel {channel}")
    try:
        capabilities = bootstrap.channel_adapter(settings, found)[0].pull_capabilities
    except Exception as exc:  # noqa: BLE001 - the rewind does not need the adapter; it says what it cannot tell
        click.echo(f"note: cannot build {channel}'s adapter ({exc}); the overlap of its pulls is not known", err=True)
        capabilities = None
    try:
        done = rewind(sessions, channel, job, to, capabilities=capabilities)
    except ScheduleError as exc:
        fail(str(exc))
    click.echo(f"{channel} {job}: watermark {display_time(done.previous)} -> {display_time(done.to)}")
    if done.resumed_cursor:
        click.echo("the pull that was to resume from a page starts afresh instead")
    click.echo(f"the next run re-reads from {display_time(done.rereads_from)} to its start"
               + (f" (less {capabilities.settle_lag_s:g}s the marketplace needs to settle)" if capabilities
                  and capabilities.settle_lag_s else "")
               + "; orders and cancellations stored before are not sent again. Run it now with "
               f"`wheelctl jobs run-now {channel} {job}`")


COMMANDS = [jobs]
