"""The base of every Wheel task (the app's `task_cls`): a bounded number of attempts, and an event
when they run out.

Tasks are acknowledged late and requeued when their worker process dies (workers/app.py), so a
crash never loses one. The price is that a task which itself kills its worker (out of memory on a
huge answer, a crash in a C library on a hostile document) would be delivered again for ever, and
nothing would say so: its transaction never commits. So every start is counted in Redis under the
task's id before the work begins, and forgotten when the task ends in any way its worker survives
(a retry is the same task id, and starts afresh). A delivery past WHEEL_TASK_MAX_DELIVERIES is not
run: the work is set aside and an error event recorded and alerted.

An exception the task does not expect ends it the same way, after one attempt: its event says what
it was, instead of the sweeper sending it again every few minutes in silence. Outages of Postgres,
Redis or the broker are not the task's fault: they are retried as the task says, then left to the
sweeper, and no event could be written during them anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kombu.exceptions
import redis
from celery import Task
from celery.exceptions import TaskPredicate
from sqlalchemy.exc import InterfaceError, OperationalError

from wheel.events import Recorded
from wheel.logs import log_context
from wheel.services import failures, oms_messages, pulls
from workers import queues
from workers.bootstrap import Container, container
from workers.dispatch import Dispatcher

log = logging.getLogger("wheel.tasks")

# Not the task's fault, and retried (or re-driven by the sweeper): never recorded as a failure.
OUTAGES = (OperationalError, InterfaceError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
           kombu.exceptions.OperationalError)


def settings_of(app):
    return app.wheel_settings


def starts_key(task_id: str) -> str:
    return f"wheel:task-starts:{task_id}"


def context_of(name: str, args: tuple | list) -> dict[str, object]:
    """What a task's arguments say about the work in hand, for its log lines (wheel/logs.py)."""
    key = ARGUMENT_CONTEXT.get(name)
    return {key: args[0]} if key and args else {}


# The first argument of each task, as it is named in the logs.
ARGUMENT_CONTEXT = {
    queues.PROCESS_MESSAGE: "inbox_id",
    queues.PROCESS_MESSAGES: "inbox_ids",  # each message's own lines add its inbox_id (workers/tasks.py)
    queues.SYNC: "channel_id",
    queues.POLL_SUBMISSION: "channel_id",
    queues.RUN_JOB: "run_id",
    queues.ALERT: "event_id",
}


class WheelTask(Task):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if task_id is None or self.request.called_directly:
            return super().__call__(*args, **kwargs)
        with log_context(task_id=task_id, task_name=self.name, **context_of(self.name, args)):
            return self._guarded(task_id, *args, **kwargs)

    def _guarded(self, task_id: str, *args: Any, **kwargs: Any) -> Any:
        c = container(settings_of(self.app))
        starts = self._count_start(c, task_id)
        limit = c.settings.task_max_deliveries
        if starts is not None and starts > limit:
            self._give_up(c, list(args), failures.abandoned_error(starts - 1), task_id, abandoned=True)
            self._forget(c, task_id)
            return f"abandoned: its worker died {starts - 1} times"
        try:
            return super().__call__(*args, **kwargs)
        except (TaskPredicate, *OUTAGES):
            raise  # a retry, or an outage: the task's own retries, then the sweeper
        except Exception as exc:  # noqa: BLE001 - said below, with the traceback in the log
            log.exception("task %s%r failed with an unexpected error", self.name, tuple(args))
            self._give_up(c, list(args), failures.error_text(exc), task_id, abandoned=False)
            return f"failed: {type(exc).__name__}"
        finally:
            self._forget(c, task_id)

    @staticmethod
    def _count_start(c: Container, task_id: str) -> int | None:
        """This start's number; None when Redis cannot count (the task then runs: better a loop
        that Redis's return will bound than work not done)."""
        try:
            pipe = c.redis.pipeline()
            pipe.incr(starts_key(task_id))
            # Long enough to see every redelivery of the task (Redis redelivers after the
            # visibility timeout at the latest).
            pipe.expire(starts_key(task_id), max(86400, 2 * c.settings.visibility_timeout_s))
            return int(pipe.execute()[0])
        except redis.RedisError as exc:
            log.warning("could not count the start of task %s in Redis (%s); running it", task_id, exc)
            return None

    @staticmethod
    def _forget(c: Container, task_id: str) -> None:
        try:
            c.redis.delete(starts_key(task_id))
        except redis.RedisError:
            pass  # the key expires by itself

    def _give_up(self, c: Container, args: list[Any], error: str, task_id: str, *, abandoned: bool) -> None:
        handler = GIVE_UP.get(self.name, _record_only)
        dispatch = Dispatcher(self.app, chunk=c.settings.process_chunk)
        recorded = handler(c, dispatch, self.name, args, error, task_id, abandoned)
        log.error("task %s%r %s: %s", self.name, tuple(args), "abandoned" if abandoned else "failed", error)
        if self.name == queues.ALERT:
            return  # an alert about a failing alert could fail the same way, for ever
        for event in recorded:
            if event.created and event.event.level == "error":
                dispatch.alert(event.id)


# -- what giving up means, per task ------------------------------------------------------------

# (container, dispatcher, task name, arguments, error, task id, abandoned) -> the events recorded
GiveUp = Callable[[Container, Dispatcher, str, list[Any], str, str, bool], list[Recorded]]


def _record_only(c: Container, dispatch: Dispatcher, task: str, args: list[Any], error: str, task_id: str,
                 abandoned: bool, **kwargs: Any) -> list[Recorded]:
    return [failures.record_task_failure(c.sessions, task=task, args=args, error=error, task_id=task_id,
                                         abandoned=abandoned, **kwargs)]


def _message(c: Container, dispatch: Dispatcher, task: str, args: list[Any], error: str, task_id: str,
             abandoned: bool) -> list[Recorded]:
    # The message is set aside (failed, replayable) with the event the ops team knows for it.
    recorded = oms_messages.fail_message(c.sessions, int(args[0]), error, operation_for_queue=c.settings.operation_for_queue)
    return recorded or _record_only(c, dispatch, task, args, error, task_id, abandoned)


def _messages(c: Container, dispatch: Dispatcher, task: str, args: list[Any], error: str, task_id: str,
              abandoned: bool) -> list[Recorded]:
    """A chunk is processed in order, each message committed before the next and one that fails
    set aside by the task itself: the first still waiting is the one its worker died (or the task
    failed) on. That one is set aside; the rest go on in a task of their own, so none is lost."""
    waiting = oms_messages.still_received(c.sessions, [int(inbox_id) for inbox_id in args[0]])
    if not waiting:
        return _record_only(c, dispatch, task, args, error, task_id, abandoned)
    recorded = _message(c, dispatch, task, [waiting[0]], error, task_id, abandoned)
    if waiting[1:]:
        dispatch.process_messages(waiting[1:])
    return recorded


def _run(c: Container, dispatch: Dispatcher, task: str, args: list[Any], error: str, task_id: str,
         abandoned: bool) -> list[Recorded]:
    outcome = pulls.fail_run(c.sessions, int(args[0]), error)
    return outcome.alerts or _record_only(c, dispatch, task, args, error, task_id, abandoned)


def _sync(c: Container, dispatch: Dispatcher, task: str, args: list[Any], error: str, task_id: str,
          abandoned: bool) -> list[Recorded]:
    return _record_only(c, dispatch, task, args, error, task_id, abandoned, channel_id=str(args[0]),
                        fix="the channel's listings stay dirty and the sweeper sends its sync again; "
                            "see the worker's log for the traceback")


def _alert(c: Container, dispatch: Dispatcher, task: str, args: list[Any], error: str, task_id: str,
           abandoned: bool) -> list[Recorded]:
    return _record_only(c, dispatch, task, args, error, task_id, abandoned, level="warning",
                        fix="a delivery pass of the alerts outbox failed; its alerts stay pending "
                            "and the sweeper starts another pass")


GIVE_UP: dict[str, GiveUp] = {
    queues.PROCESS_MESSAGE: _message,
    queues.PROCESS_MESSAGES: _messages,
    queues.RUN_JOB: _run,
    queues.SYNC: _sync,
    queues.POLL_SUBMISSION: _sync,  # (channel, feed id): the feed's SKUs stay held; the sweeper polls again
    queues.ALERT: _alert,
}
