"""Queue and task names in one place: routes, the bridge, beat and the sweeper all use these."""

from __future__ import annotations

from wheel.marketplaces import MARKETPLACES

OMS_QUEUE = "oms"  # parsing OMS messages, sweeping
NOTIFICATIONS_QUEUE = "notifications"
# Putting the outbox on the OMS queues: one worker process, so orders go out in order.
PUBLISHER_QUEUE = "publisher"

PROCESS_MESSAGE = "wheel.oms.process_message"  # one message (the sweeper, a replay)
PROCESS_MESSAGES = "wheel.oms.process_messages"  # a chunk of the bridge's messages, in order
SYNC = "wheel.marketplace.sync"
POLL_SUBMISSION = "wheel.marketplace.poll_submission"  # an Amazon feed in flight, on its marketplace's queue
SWEEP = "wheel.system.sweep"
HEALTH = "wheel.system.health"
PURGE = "wheel.system.purge"  # the retention purge, on beat
ALERT = "wheel.notify.alert"
RUN_JOB = "wheel.jobs.run"  # a scheduled pull, on its marketplace's queue
PUBLISH = "wheel.oms.publish"


def marketplace_queue(marketplace: str) -> str:
    if marketplace not in MARKETPLACES:
        raise ValueError(f"unknown marketplace {marketplace!r}; known: {', '.join(MARKETPLACES)}")
    return f"marketplace.{marketplace}"


MARKETPLACE_QUEUES = tuple(marketplace_queue(name) for name in MARKETPLACES)
ALL_QUEUES = (OMS_QUEUE, NOTIFICATIONS_QUEUE, PUBLISHER_QUEUE, *MARKETPLACE_QUEUES)

# Tasks whose queue does not depend on their arguments. A push names its queue when sent.
TASK_ROUTES = {
    PROCESS_MESSAGE: {"queue": OMS_QUEUE},
    PROCESS_MESSAGES: {"queue": OMS_QUEUE},
    SWEEP: {"queue": OMS_QUEUE},
    HEALTH: {"queue": OMS_QUEUE},
    PURGE: {"queue": OMS_QUEUE},
    ALERT: {"queue": NOTIFICATIONS_QUEUE},
    PUBLISH: {"queue": PUBLISHER_QUEUE},
}
