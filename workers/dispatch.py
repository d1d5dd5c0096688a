"""Sending tasks. Callers send only after the database commit that made the work a row."""

from __future__ import annotations

from celery import Celery

from workers import queues


class Dispatcher:
    def __init__(self, app: Celery):
        self._app = app

    def process_message(self, inbox_id: int) -> None:
        self._app.send_task(queues.PROCESS_MESSAGE, args=[inbox_id], queue=queues.OMS_QUEUE)

    def process_messages(self, inbox_ids: list[int]) -> None:
        """Many at once, through one producer (the bridge sends a batch at a time)."""
        with self._app.producer_or_acquire() as producer:
            for inbox_id in inbox_ids:
                self._app.send_task(queues.PROCESS_MESSAGE, args=[inbox_id], queue=queues.OMS_QUEUE, producer=producer)

    def push(self, push_id: int, marketplace: str, countdown: float | None = None) -> None:
        self._app.send_task(
            queues.PUSH, args=[push_id], queue=queues.marketplace_queue(marketplace), countdown=countdown
        )

    def alert(self, event_id: int) -> None:
        self._app.send_task(queues.ALERT, args=[event_id], queue=queues.NOTIFICATIONS_QUEUE)
