"""The MQ bridge: takes OMS messages off their queues into the inbox and hands them to Celery.

Also home of the transports (AMQP via kombu, IBM MQ via ibmmq/pymqi) and of `wheelctl`, the
operator's CLI, which wires the core library, the transports and the Celery app together.
"""

from bridge.guard import ensure_wheel_is_ours

ensure_wheel_is_ours()
