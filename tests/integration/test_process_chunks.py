"""The process_messages task's body (a chunk of the bridge's messages), called directly on the real
Postgres and Redis: an outage stops the chunk after syncing what was done, an unexpected error sets
one message aside and the chunk goes on."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.integration.test_dispatch import waiting
from tests.support import services
from wheel.services.channels import add_channel
from wheel.services.inbox import IncomingMessage, store_batch
from workers import bootstrap, queues, tasks
from workers.bootstrap import celery_app
from workers.dispatch import sync_flag


@pytest.fixture(autouse=True)
def fresh_container(monkeypatch):
    """Each test's settings (queues of its own) in the task's container, not the first test's."""
    monkeypatch.setattr(bootstrap, "_container", None)


@pytest.fixture
def refuse_sku(listing_trigger):
    """`refuse_sku(sku, sqlstate)`: Postgres refuses listings rows of that SKU with that error."""
    return lambda sku, sqlstate: listing_trigger(
        sku, f"RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = '{sqlstate}';")


def ranging_messages(sessions, settings, places: list[tuple[str, str]]) -> list[int]:
    """Channels UA and UB (Tata CLiQ), and a stored ranging message for each (channel, SKU): their inbox ids."""
    with sessions.begin() as session:
        for channel_id in ("UA", "UB"):
            add_channel(session, channel_id=channel_id, marketplace="tatacliq", base_url="http://127.0.0.1:9/tatacliq",
                        credentials_ref=f"tatacliq-{channel_id.lower()}", known_marketplaces=("tatacliq",))
        stored = store_batch(session, [IncomingMessage(
            settings.queue_ranging, f'<EXTNChannelList><EXTNChannelItemList><EXTNChannelItem ChannelID="{channel}" '
            f'EAN="E{sku}" ItemID="{sku}" RangeFlag="Y"/></EXTNChannelItemList></EXTNChannelList>'.encode(), sku)
            for channel, sku in places])
    return [message.inbox_id for message in stored]


def statuses(sessions) -> list[str]:
    with sessions() as session:
        return list(session.execute(text("SELECT status FROM inbox ORDER BY id")).scalars())


def test_an_outage_stops_the_chunk_after_syncing_what_was_done_and_an_error_fails_one_message(
        sessions, broker, refuse_sku):
    settings = services.test_settings()
    app = celery_app(settings)  # the current app, whose settings the task reads
    ids = ranging_messages(sessions, settings, [("UA", "S1"), ("UB", "BAD"), ("UB", "S3")])
    assert app.wheel_settings is settings

    refuse_sku("BAD", "53000")  # insufficient_resources: an outage
    with pytest.raises(OperationalError):
        tasks.process_messages(ids)
    assert statuses(sessions) == ["processed", "received", "received"]
    assert broker.exists(sync_flag("UA")) and not broker.exists(sync_flag("UB"))  # synced before it stopped

    refuse_sku("BAD", "22000")  # a data exception: nobody expects it
    assert tasks.process_messages(ids) == "3 messages: 1 processed, 1 skipped, 1 set aside"
    assert statuses(sessions) == ["processed", "failed", "processed"]
    with sessions() as session:
        error = session.execute(text("SELECT payload->>'error' FROM events WHERE name = 'system/processing-failed' "
                                     "AND inbox_id = :id"), {"id": ids[1]}).scalar_one()
    assert error.startswith("DataError: (psycopg.errors.DataException) refused by a test trigger")
    assert sorted(waiting(broker, queues.marketplace_queue("tatacliq"))) == [(queues.SYNC, ["UA"]), (queues.SYNC, ["UB"])]
    assert waiting(broker, queues.NOTIFICATIONS_QUEUE) == [(queues.ALERT, [])]  # the set-aside message's alert


def test_a_chunk_delivered_again_after_its_worker_died_still_syncs_what_that_worker_committed(sessions, broker):
    # The worker died after committing the first message and before sending its channel's sync: the
    # chunk comes again, the first message is skipped, and its channel must still get its sync
    # (else its listings wait for the sweeper's deadline).
    settings = services.test_settings()
    celery_app(settings)
    ids = ranging_messages(sessions, settings, [("UA", "S1"), ("UB", "S2")])
    tasks.process_messages(ids[:1])
    broker.flushdb()  # as if the worker died before its syncs reached Redis

    assert tasks.process_messages(ids) == "2 messages: 1 processed, 1 skipped, 0 set aside"
    assert sorted(waiting(broker, queues.marketplace_queue("tatacliq"))) == [(queues.SYNC, ["UA"]), (queues.SYNC, ["UB"])]
