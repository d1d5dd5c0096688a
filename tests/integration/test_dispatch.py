"""Sending sync tasks after a message: the coalescing flags and the tasks, on the real Redis (the broker)."""

from __future__ import annotations

import base64
import json

import redis

from tests.support import services
from wheel.services.sync import COALESCE_S
from workers import queues
from workers.bootstrap import celery_app
from workers.dispatch import Dispatcher, sync_flag


def waiting(client: redis.Redis, queue: str) -> list[tuple[str, list]]:
    """(task name, args) of each task waiting on a queue of the Redis broker."""
    out = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], args))
    return out


def test_a_message_s_channels_get_one_sync_each_unless_one_is_on_its_way(broker):
    app = celery_app(services.test_settings())
    broker.set(sync_flag("UF"), "1")  # a sync of UF is on its way already
    dispatch = Dispatcher(app, flags=redis.Redis.from_url(services.TEST_REDIS_URL))
    dispatch.sync_soon_many([("UA", "tatacliq"), ("UF", "flipkart"), ("UB", "tatacliq"), ("UA", "tatacliq")])
    assert sorted(waiting(broker, queues.marketplace_queue("tatacliq"))) == [(queues.SYNC, ["UA"]), (queues.SYNC, ["UB"])]
    assert waiting(broker, queues.marketplace_queue("flipkart")) == []
    for channel_id in ("UA", "UB"):
        assert COALESCE_S * 1000 < broker.pttl(sync_flag(channel_id)) <= COALESCE_S * 1000 + 30_000

    dispatch.sync_soon_many([("UA", "tatacliq")])  # flagged: nothing more
    dispatch.sync_soon_many([])
    assert len(waiting(broker, queues.marketplace_queue("tatacliq"))) == 2
    broker.delete(sync_flag("UB"))  # the sync started (workers/tasks.py clears the flag)
    Dispatcher(app).sync_soon("UB", "tatacliq")  # one at a time, with a client of its own
    assert len(waiting(broker, queues.marketplace_queue("tatacliq"))) == 3


def test_the_bridge_s_messages_go_out_one_task_per_chunk(broker):
    app = celery_app(services.test_settings())
    Dispatcher(app, chunk=3).process_messages([11, 12, 13, 14, 15, 16, 17])
    # The newest first (kombu pushes on the left, takes on the right): sent in order.
    assert waiting(broker, queues.OMS_QUEUE) == [(queues.PROCESS_MESSAGES, [[17]]),
                                                 (queues.PROCESS_MESSAGES, [[14, 15, 16]]),
                                                 (queues.PROCESS_MESSAGES, [[11, 12, 13]])]
    Dispatcher(app).process_message(18)  # one at a time (the sweeper, a replay)
    assert waiting(broker, queues.OMS_QUEUE)[0] == (queues.PROCESS_MESSAGE, [18])
