"""Logging for every Wheel process (bridge, Celery workers, beat, wheelctl), set up in one place.

`configure_logging` is called by each entry point (workers/bootstrap.py). With WHEEL_LOG_FORMAT=json
every line a process writes to standard error is one JSON object: `time` (UTC, ISO 8601), `level`,
`process` (wheel-bridge, wheel-worker, wheel-beat, wheelctl), `pid`, `logger`, `message`, and what
is known of the work in hand: `task_id`, `task_name`, `inbox_id` (`inbox_ids` for a chunk of
messages), `channel_id`, `event_id`, `run_id`. Otherwise lines are for a person to read (the
default, used by `make run`).

The JSON formatter is these few lines rather than python-json-logger: the fields are fixed, the
context comes from contextvars, and nothing else is needed, so a dependency would add nothing.
The work in hand is set with `log_context` (by the task base class, workers/guard.py, and by the
bridge); processes may add `providers` of more context (Celery's current task, for Celery's own
lines about a task).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone

from wheel.settings import Settings

CONTEXT_FIELDS = ("task_id", "task_name", "inbox_id", "inbox_ids", "channel_id", "event_id", "run_id")
ContextProvider = Callable[[], dict[str, object]]

_context: ContextVar[dict[str, object]] = ContextVar("wheel_log_context", default={})


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Add `values` (those not None) to every log line written inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, object]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Puts the process's name and the work in hand on every record its handler writes."""

    def __init__(self, process: str, providers: Sequence[ContextProvider] = ()):
        super().__init__()
        self.process, self.providers = process, tuple(providers)

    def filter(self, record: logging.LogRecord) -> bool:
        context: dict[str, object] = {}
        for provider in self.providers:
            context.update(provider())
        context.update(_context.get())
        record.wheel_process = self.process
        record.wheel_context = context
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": getattr(record, "wheel_process", ""),
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "wheel_context", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The readable line, as Wheel has always written it, with the work in hand at the end of its
    first line. (`make run` names each process at the start of its lines.)"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        context = getattr(record, "wheel_context", {})
        text = super().format(record)
        if not context:
            return text
        head, newline, rest = text.partition("\n")
        return head + " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]" + newline + rest


def configure_logging(settings: Settings, *, process: str, level: str | int = "INFO",
                      providers: Sequence[ContextProvider] = ()) -> logging.Handler:
    """Send every logger's records to standard error in the settings' format, replacing the root
    logger's handlers; Python warnings and uncaught exceptions go the same way."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter(process, providers))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    crash = logging.getLogger("wheel.crash")

    def excepthook(kind, value, traceback):
        crash.critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, traceback))

    def thread_excepthook(args):
        if args.exc_type is not SystemExit:
            crash.critical("uncaught %s in thread %s: %s", args.exc_type.__name__,
                           args.thread.name if args.thread else "?", args.exc_value,
                           exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    return handler
