"""Celery: the app, its queues and routes, the tasks and the beat schedule."""

from bridge.guard import ensure_wheel_is_ours

ensure_wheel_is_ours()
