"""Sending tasks. Callers send only after the database commit that made the work a row."""

from __future__ import annotations

from collections.abc import Iterable

import redis
from celery import Celery

from wheel.services.sync import COALESCE_S
from workers import queues


class Dispatcher:
    def __init__(self, app: Celery, flags: redis.Redis | None = None, *, chunk: int = 1):
        """flags: the Redis client of the app's broker, when the caller keeps one (a worker
        process's, workers/bootstrap.py); else one is made on first use. chunk: the messages per
        process_messages task (WHEEL_PROCESS_CHUNK, for callers that send many)."""
        self._app = app
        self._redis = flags
        self._chunk = chunk

    def process_message(self, inbox_id: int) -> None:
        self._app.send_task(queues.PROCESS_MESSAGE, args=[inbox_id], queue=queues.OMS_QUEUE)

    def process_messages(self, inbox_ids: list[int]) -> None:
        """Many at once (the bridge sends a batch at a time): one task per chunk, in order,
        through one producer. A task costs more to send than most messages take to process."""
        with self._app.producer_or_acquire() as producer:
            for start in range(0, len(inbox_ids), self._chunk):
                self._app.send_task(queues.PROCESS_MESSAGES, args=[inbox_ids[start:start + self._chunk]],
                                    queue=queues.OMS_QUEUE, producer=producer)

    def sync(self, channel_id: str, marketplace: str, countdown: float | None = None) -> None:
        self._app.send_task(queues.SYNC, args=[channel_id], queue=queues.marketplace_queue(marketplace),
                            countdown=countdown)

    def poll_submission(self, channel_id: str, marketplace: str, reference: str, countdown: float | None = None) -> None:
        self._app.send_task(queues.POLL_SUBMISSION, args=[channel_id, reference],
                            queue=queues.marketplace_queue(marketplace), countdown=countdown)

    def sync_soon(self, channel_id: str, marketplace: str) -> None:
        """A sync run for the channel shortly, unless one is already on its way.

        The flag only saves duplicate tasks; if Redis loses it, a duplicate is harmless, and if
        Redis loses the task, the sweeper sends another (the listings are rows in Postgres).
        """
        self.sync_soon_many([(channel_id, marketplace)])

    def sync_soon_many(self, channels: Iterable[tuple[str, str]]) -> None:
        """sync_soon for each (channel id, marketplace): every flag in one round trip to Redis (a
        pipeline of SET NX), then the tasks of the channels whose flag was not set yet, through
        one producer."""
        wanted = list(dict.fromkeys(channels))
        if not wanted:
            return
        pipe = self._flags().pipeline(transaction=False)
        for channel_id, _ in wanted:
            pipe.set(sync_flag(channel_id), "1", nx=True, px=int(COALESCE_S * 1000) + 30_000)
        due = [channel for channel, was_set in zip(wanted, pipe.execute(), strict=True) if was_set]
        if not due:
            return
        with self._app.producer_or_acquire() as producer:
            for channel_id, marketplace in due:
                self._app.send_task(queues.SYNC, args=[channel_id], queue=queues.marketplace_queue(marketplace),
                                    countdown=COALESCE_S, producer=producer)

    def clear_sync_flag(self, channel_id: str) -> None:
        self._flags().delete(sync_flag(channel_id))

    def run_job(self, run_id: int, marketplace: str, countdown: float | None = None) -> None:
        self._app.send_task(queues.RUN_JOB, args=[run_id], queue=queues.marketplace_queue(marketplace),
                            countdown=countdown)

    def publish(self, countdown: float | None = None) -> None:
        self._app.send_task(queues.PUBLISH, queue=queues.PUBLISHER_QUEUE, countdown=countdown)

    def publish_soon(self) -> None:
        """A publisher run shortly, unless one is already waiting to start (the flag is cleared
        when it starts, so rows written during a run get a run of their own)."""
        if self._flags().set(PUBLISH_FLAG, "1", nx=True, px=30_000):
            self.publish()

    def clear_publish_flag(self) -> None:
        self._flags().delete(PUBLISH_FLAG)

    def alert(self, event_id: int | None = None) -> None:
        """A delivery pass of the alerts outbox soon (the event's alert is a row already, written
        with it: wheel/events.py), unless one is already waiting to start; the flag is cleared when
        a pass starts, so alerts written during a pass get a pass of their own."""
        if self._flags().set(ALERT_FLAG, "1", nx=True, px=30_000):
            self._app.send_task(queues.ALERT, queue=queues.NOTIFICATIONS_QUEUE)

    def alert_later(self, countdown: float) -> None:
        """A pass when the next held or retried alert is due, unless one is already on its way.
        A lost one costs nothing: the sweeper starts a pass whenever alerts are due."""
        if self._flags().set(ALERT_LATER_FLAG, "1", nx=True, px=int(countdown * 1000) + 5_000):
            self._app.send_task(queues.ALERT, queue=queues.NOTIFICATIONS_QUEUE, countdown=countdown)

    def clear_alert_flag(self) -> None:
        self._flags().delete(ALERT_FLAG)

    def _flags(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self._app.conf.broker_url, socket_timeout=10, socket_connect_timeout=10)
        return self._redis


PUBLISH_FLAG = "wheel:publish-pending"
ALERT_FLAG = "wheel:alert-pending"
ALERT_LATER_FLAG = "wheel:alert-later"


def sync_flag(channel_id: str) -> str:
    return f"wheel:sync-pending:{channel_id}"
