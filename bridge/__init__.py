"""The OMS side of the wire: the transports (RabbitMQ via kombu, IBM MQ via ibmmq/pymqi) and the
consume loop that takes OMS messages off their queues into the inbox (bridge/consumer.py).

It imports only the core (`wheel`); the tasks it sends go through a callable it is given
(workers/bootstrap.py builds it), so it knows nothing of Celery.
"""

from bridge.guard import ensure_wheel_is_ours

ensure_wheel_is_ours()
