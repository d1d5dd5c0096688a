"""An Amazon order cancelled after it reached the OMS produces exactly one cancellation document on
OMS.CANCELLATIONS and no second order document.

Real processes, as in production: the sandbox (Amazon's searchOrders, which answers a data set only
when includedData asks for it and gives a cancelled order no address), a Celery worker (pulls and
the publisher) and beat, pulling every 2 seconds with a 1-second order lag. The test reads the OMS
queues as the OMS would.
"""

from __future__ import annotations

import json

import pytest
from lxml import etree

from tests.support.processes import wait_for
from wheel.db.models import Channel
from wheel.oms.orders import validate_document
from wheel.services.schedules import ensure_schedules

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

EVERY_2S = "* * * * * */2"
SECRET = {"client_id": "lwa-uz", "client_secret": "lwa-secret-uz", "refresh_token": "refresh-uz"}


def test_an_amazon_order_cancelled_after_it_reached_the_oms_is_one_cancellation_and_no_second_order(stack_factory):
    stack = stack_factory({"UZ": {"marketplace": "amazon", "client_id": SECRET["client_id"],
                                  "client_secret": SECRET["client_secret"], "token": SECRET["refresh_token"],
                                  "quota_scale": 200.0, "order_lag_s": 1}},
                          orders_initial_lookback_s=3600)
    stack.start_sandbox()
    stack.add_channel("UZ", json.dumps(SECRET), marketplace="amazon", quota_scale=200.0,
                      options={"seller_id": "UZ", "lwa_url": f"{stack.sandbox_url}/amazon/auth/o2/token",
                               "order_lag_s": 1, "oms_header": {"EntryType": "UZ"}})
    with stack.sessions.begin() as session:
        ensure_schedules(session, session.get(Channel, "UZ"), jobs={"orders": EVERY_2S})
    stack.add_worker("oms,notifications,publisher,marketplace.amazon", concurrency=2)
    stack.start_beat()

    [order] = stack.create_orders("UZ", orders=[{"lines": [{"sku": "KURTA-RED-42", "quantity": 2, "price": "1998.00"},
                                                           {"sku": "DUPATTA-1", "price": "250.00"}]}])
    order_id = order["order_id"]
    wait_for(lambda: stack.scalar("SELECT status FROM orders WHERE order_id = :o", o=order_id) == "sent", 60,
             "the order to reach the OMS")

    stack.cancel_orders("UZ", cancellations=[{"order_id": order_id, "type": "buyer_cancellation",
                                              "reason": "Changed my mind"}])
    wait_for(lambda: stack.scalar("SELECT count(*) FROM outbox WHERE kind = 'cancellation' AND sent_at IS NOT NULL") == 1,
             60, "the cancellation to reach the OMS")
    # Let overlapping pulls see the cancelled order again (each window starts 10 minutes back).
    runs = stack.scalar("SELECT count(*) FROM job_runs WHERE status = 'succeeded'")
    wait_for(lambda: stack.scalar("SELECT count(*) FROM job_runs WHERE status = 'succeeded'") >= runs + 3, 60,
             "three more pulls")

    orders = [etree.fromstring(d.body) for d in stack.drain(stack.settings.queue_orders)]
    cancellations = stack.drain(stack.settings.queue_cancellations)

    assert [(o.get("OrderNo"), o.get("EntryType")) for o in orders] == [(order_id, "UZ")]
    assert len(cancellations) == 1
    assert validate_document(cancellations[0].body) == "cancellation"
    cancel = etree.fromstring(cancellations[0].body)
    assert (cancel.get("OrderNo"), cancel.get("Action"), cancel.get("ModificationReasonCode"),
            cancel.get("ModificationReasonText")) == (order_id, "CANCEL", "BUYER", "Changed my mind")
    assert stack.events("order/failed") == [] and stack.events("order/failed-after-sent") == []
    assert stack.events("system.cron/failed") == []
    assert [e.payload["order_id"] for e in stack.events("cancellation/received")] == [order_id]
