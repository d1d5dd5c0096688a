"""The tasks: thin, named, taking row ids; each makes one call into a service."""

from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import sessionmaker

from wheel.events import Recorded
from wheel.logs import log_context
from wheel.services import alerts, failures, oms_messages, outbox, pulls, retention, submissions, sweeper, sync
from wheel.services.channels import list_channels
from workers import health, queues
from workers.bootstrap import Container, container
from workers.dispatch import Dispatcher
from workers.guard import OUTAGES

log = logging.getLogger(__name__)

# Database outages are retried here; what a service expects it records as an event, and any other
# error ends the task with a system/task-failed event (or the like) from workers/guard.py.
RETRY_DB = dict(autoretry_for=(OperationalError, InterfaceError), retry_backoff=2, retry_backoff_max=60, max_retries=8)


def _context(task) -> tuple[Container, Dispatcher]:
    c = container(task.app.wheel_settings)
    # The process's Redis client for the flags (the broker's Redis): not a new connection per task.
    return c, Dispatcher(task.app, flags=c.redis)


def _send_alerts(dispatch: Dispatcher, recorded: list[Recorded]) -> None:
    for event in recorded:
        if event.created:
            dispatch.alert(event.id)


@shared_task(name=queues.PROCESS_MESSAGE, bind=True, **RETRY_DB)
def process_message(self, inbox_id: int) -> str:
    c, dispatch = _context(self)
    result = oms_messages.process_message(
        c.sessions,
        inbox_id,
        operation_for_queue=c.settings.operation_for_queue,
        max_message_bytes=c.settings.max_message_bytes,
    )
    dispatch.sync_soon_many(result.channels)
    _send_alerts(dispatch, result.alerts)
    return "skipped" if result.skipped else f"{len(result.channels)} channels"


@shared_task(name=queues.PROCESS_MESSAGES, bind=True, **RETRY_DB)
def process_messages(self, inbox_ids: list[int]) -> str:
    """A chunk of the bridge's messages, in order, each in its own transaction; their channels'
    syncs at the end, in one round trip to Redis.

    A message that fails unexpectedly is set aside as the guard would set aside its own task
    (workers/guard.py), and the rest go on. An outage stops the chunk and is retried: the retry
    skips what was processed already (oms_messages.process_message is idempotent).
    """
    c, dispatch = _context(self)
    channels: list[tuple[str, str]] = []
    done = {"processed": 0, "skipped": 0, "set aside": 0}
    try:
        # One connection for the chunk (one checkout and one liveness ping, not one per message);
        # each message still commits in a transaction of its own.
        with c.sessions.kw["bind"].connect() as connection:
            chunk_sessions = sessionmaker(connection, expire_on_commit=False)
            for inbox_id in inbox_ids:
                with log_context(inbox_id=inbox_id):
                    try:
                        result = oms_messages.process_message(
                            chunk_sessions,
                            inbox_id,
                            operation_for_queue=c.settings.operation_for_queue,
                            max_message_bytes=c.settings.max_message_bytes,
                        )
                    except OUTAGES:
                        raise
                    except Exception as exc:  # noqa: BLE001 - said below, with the traceback in the log
                        log.exception("message %d failed with an unexpected error; setting it aside", inbox_id)
                        _send_alerts(dispatch, oms_messages.fail_message(
                            c.sessions, inbox_id, failures.error_text(exc), operation_for_queue=c.settings.operation_for_queue))
                        done["set aside"] += 1
                        continue
                    channels.extend(result.channels)
                    _send_alerts(dispatch, result.alerts)
                    done["skipped" if result.skipped else "processed"] += 1
    except OUTAGES:
        # What was processed is synced now if Redis can take it; else the sweeper re-drives it.
        try:
            dispatch.sync_soon_many(channels)
        except OUTAGES as exc:
            log.warning("could not send the syncs of the messages processed before an outage (%s)", exc)
        raise
    if done["skipped"]:
        # Delivered again: a worker died after committing some of these messages, perhaps before
        # sending their syncs, and a skipped message no longer says which channels it touched. Every
        # enabled channel gets one (a run with nothing dirty claims nothing), not the sweeper's wait.
        with c.sessions() as session:
            channels.extend((channel.id, channel.marketplace) for channel in list_channels(session) if channel.enabled)
    dispatch.sync_soon_many(channels)
    return f"{len(inbox_ids)} messages: " + ", ".join(f"{n} {what}" for what, n in done.items())


@shared_task(name=queues.SYNC, bind=True, **RETRY_DB)
def sync_channel(self, channel_id: str) -> str:
    c, dispatch = _context(self)
    # From here on, a new update for the channel sends a new run (this one may have claimed already).
    dispatch.clear_sync_flag(channel_id)
    outcome = sync.run_sync(
        c.sessions,
        channel_id,
        adapters=c.adapter,
        gate_for=c.quota_gate,
        worker=c.worker_id,
        lease_s=c.settings.push_lease_s,
        default_retry_delays_s=c.settings.push_retry_delays_s,
        request_budget_s=c.settings.http_connect_timeout_s + c.settings.http_read_timeout_s,
        first_poll_s=c.settings.feed_first_poll_s,
    )
    for reference in outcome.submitted:
        dispatch.poll_submission(channel_id, outcome.marketplace, reference, countdown=c.settings.feed_first_poll_s)
    if outcome.retry_in_s is not None:
        dispatch.sync(channel_id, outcome.marketplace, countdown=outcome.retry_in_s)
    elif outcome.more:
        dispatch.sync(channel_id, outcome.marketplace)
    _send_alerts(dispatch, outcome.alerts)
    return outcome.skipped or f"{outcome.skus} SKUs in {outcome.calls} calls"


@shared_task(name=queues.POLL_SUBMISSION, bind=True, **RETRY_DB)
def poll_submission(self, channel_id: str, reference: str) -> str:
    c, dispatch = _context(self)
    outcome = submissions.poll_submission(
        c.sessions,
        channel_id,
        reference,
        adapters=c.adapter,
        gate_for=c.quota_gate,
        default_retry_delays_s=c.settings.push_retry_delays_s,
        first_poll_s=c.settings.feed_first_poll_s,
        max_poll_s=c.settings.feed_max_poll_s,
    )
    if outcome.status == "waiting":
        dispatch.poll_submission(channel_id, outcome.marketplace, reference, countdown=outcome.poll_in_s)
    elif outcome.status == "finished":
        # Values that changed while the feed was in flight, and any pushed again, go out now.
        dispatch.sync(channel_id, outcome.marketplace)
    _send_alerts(dispatch, outcome.alerts)
    return f"{reference}: {outcome.status}"


@shared_task(name=queues.SWEEP, bind=True, **RETRY_DB)
def sweep(self) -> str:
    c, dispatch = _context(self)
    report = sweeper.sweep(
        c.sessions,
        deadline_s=c.settings.sweeper_deadline_s,
        send_process=dispatch.process_message,
        send_sync=dispatch.sync,
        run_deadline_s=c.settings.job_run_deadline_s,
        send_run=dispatch.run_job,
        send_publish=dispatch.publish,
        send_poll=dispatch.poll_submission,
        held_cancellation_max_age_s=c.settings.held_cancellation_max_age_s,
        send_alerts=dispatch.alert,
        alert_claim_timeout_s=c.settings.alert_claim_timeout_s,
        oms_backlog=lambda: health.queue_depths(c.redis, (queues.OMS_QUEUE,))[queues.OMS_QUEUE],
    )
    _send_alerts(dispatch, report.alerts)
    if report.inbox or report.channels or report.runs or report.outbox:
        log.warning("sweeper re-sent %d message tasks, %d channel syncs, %d job runs%s", report.inbox,
                    report.channels, report.runs, " and the publisher" if report.outbox else "")
    return f"{report.inbox} messages, {report.channels} channels, {report.runs} runs, {report.expired} expired"


@shared_task(name=queues.HEALTH, bind=True, **RETRY_DB)
def health_check(self) -> str:
    c, _ = _context(self)
    report = health.check(self.app, c.sessions, c.settings)
    return f"{len(report.findings)} findings, {len(report.opened)} opened, {len(report.cleared)} cleared"


@shared_task(name=queues.PURGE, bind=True, **RETRY_DB)
def purge(self) -> str:
    c, _ = _context(self)
    s = c.settings
    report = retention.purge(
        c.sessions,
        retention.Periods(s.retention_events_days, s.retention_inbox_days, s.retention_orders_days),
        batch_size=s.retention_batch_size,
    )
    return report.summary()


@shared_task(name=queues.RUN_JOB, bind=True, **RETRY_DB)
def run_job(self, run_id: int) -> str:
    c, dispatch = _context(self)
    outcome = pulls.run_pull(
        c.sessions,
        run_id,
        source_for=c.order_source,
        queues=pulls.OmsQueues(c.settings.queue_orders, c.settings.queue_cancellations),
        worker=c.worker_id,
        initial_lookback_s=c.settings.orders_initial_lookback_s,
        on_stored=dispatch.publish_soon,
    )
    if outcome.outboxed:
        dispatch.publish_soon()
    if outcome.retry_in_s is not None and outcome.run is not None:
        dispatch.run_job(run_id, outcome.run.marketplace, countdown=outcome.retry_in_s)
    _send_alerts(dispatch, outcome.alerts)
    return outcome.summary()


@shared_task(name=queues.PUBLISH, bind=True, autoretry_for=(Exception,), retry_backoff=1, retry_backoff_max=30,
             retry_jitter=True, max_retries=None)
def publish(self) -> str:
    c, dispatch = _context(self)
    dispatch.clear_publish_flag()
    try:
        report = outbox.publish_pending(c.sessions, c.outlet, batch_size=c.settings.publish_batch_size)
    except OperationalError:
        raise  # the database: retried as it is
    except Exception as exc:
        # The transport: drop the connection, say so, and retry (autoretry, with backoff).
        c.drop_transport()
        recorded = outbox.note_failure(c.sessions, f"{type(exc).__name__}: {exc}", attempt=self.request.retries + 1)
        if recorded is not None and recorded.created and recorded.event.level == "error":
            dispatch.alert(recorded.id)
        raise
    if report.busy:
        dispatch.publish(countdown=1.0)  # another publisher holds the lock; look again after it
    return f"{report.sent} sent in {report.batches} batches" + (" (busy)" if report.busy else "")


# One pass over the alerts outbox (wheel/services/alerts.py). Slack being down is not an error
# here: the rows stay pending with a later attempt, and a pass is sent for when they are due.
@shared_task(name=queues.ALERT, bind=True, **RETRY_DB)
def alert(self, event_id: int | None = None) -> str:  # event_id: tasks sent before the outbox carried one
    c, dispatch = _context(self)
    dispatch.clear_alert_flag()
    report = alerts.deliver_pending(c.sessions, c.alert_sender, worker=c.worker_id, options=c.alert_options)
    if report.next_in_s is not None:
        dispatch.alert_later(max(0.5, report.next_in_s))
    return report.summary()
