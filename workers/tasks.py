"""The tasks: thin, named, taking row ids; each makes one call into a service."""

from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy.exc import OperationalError

from wheel.events import Recorded
from wheel.services import alerts, oms_messages, sweeper, sync
from workers import queues
from workers.container import Container, container
from workers.dispatch import Dispatcher

log = logging.getLogger(__name__)

# Database outages are retried here; everything else is recorded by the service as an event.
RETRY_DB = dict(autoretry_for=(OperationalError,), retry_backoff=2, retry_backoff_max=60, max_retries=8)


def _context(task) -> tuple[Container, Dispatcher]:
    return container(task.app.conf.wheel_settings), Dispatcher(task.app)


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
    for channel_id, marketplace in result.channels:
        dispatch.sync_soon(channel_id, marketplace)
    _send_alerts(dispatch, result.alerts)
    return "skipped" if result.skipped else f"{len(result.channels)} channels"


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
    )
    if outcome.retry_in_s is not None:
        dispatch.sync(channel_id, outcome.marketplace, countdown=outcome.retry_in_s)
    elif outcome.more:
        dispatch.sync(channel_id, outcome.marketplace)
    _send_alerts(dispatch, outcome.alerts)
    return outcome.skipped or f"{outcome.skus} SKUs in {outcome.calls} calls"


@shared_task(name=queues.SWEEP, bind=True, **RETRY_DB)
def sweep(self) -> str:
    c, dispatch = _context(self)
    report = sweeper.sweep(
        c.sessions,
        deadline_s=c.settings.sweeper_deadline_s,
        send_process=dispatch.process_message,
        send_sync=dispatch.sync,
    )
    if report.inbox or report.channels:
        log.warning("sweeper re-sent %d message tasks and %d channel syncs", report.inbox, report.channels)
    return f"{report.inbox} messages, {report.channels} channels"


@shared_task(name=queues.ALERT, bind=True, **RETRY_DB)
def alert(self, event_id: int) -> str:
    c, _ = _context(self)
    alerts.send_alert(c.sessions, event_id, alerter=c.alerter, dashboard_url=c.settings.dashboard_url)
    return "sent"
