"""The hostile-input corpus (tests/corpus/oms/manifest.toml) through the real pipeline: each message
stored in the inbox as the bridge stores it, then processed as its worker task processes it
(wheel.services.oms_messages.process_message), on the real Postgres. Each must give its expected
event, keep its raw bytes in the inbox, and raise nothing."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest
from sqlalchemy import select, text

from tests.support.corpus import messages
from wheel.db.models import Event, InboxMessage
from wheel.services.channels import add_channel
from wheel.services.inbox import IncomingMessage, store_batch
from wheel.services.oms_messages import OMS_EVENT_NAMES, process_message
from wheel.settings import Settings

QUEUES = {"Q.RANGING": "ranging", "Q.DERANGING": "deranging", "Q.INVENTORY": "inventory", "Q.PRICING": "pricing"}
QUEUE_OF = {operation: queue for queue, operation in QUEUES.items()}
# The limit the workers run with unless WHEEL_MAX_MESSAGE_BYTES says otherwise.
MAX_MESSAGE_BYTES = Settings.model_fields["max_message_bytes"].default


def test_the_corpus_is_large_and_covers_every_queue_and_outcome():
    corpus = messages()
    assert len(corpus) >= 60
    assert {m.queue for m in corpus} == set(QUEUES.values())
    assert {m.event for m in corpus} >= {"system/parsing-failed", "system/channel-not-found", *OMS_EVENT_NAMES.values()}
    assert len({m.name for m in corpus}) == len(corpus)
    assert all(m.error for m in corpus if not m.accepted), "every refusal names a phrase its error must hold"


@pytest.mark.parametrize("message", messages(), ids=lambda m: m.name)
def test_corpus_message_gives_its_expected_event(sessions, message):
    with sessions.begin() as session:
        add_channel(session, channel_id="UA", marketplace="tatacliq", base_url="http://127.0.0.1:9/tatacliq",
                    credentials_ref="tatacliq-ua", known_marketplaces=("tatacliq",))
    body = message.body()
    with sessions.begin() as session:
        [stored] = store_batch(session, [IncomingMessage(QUEUE_OF[message.queue], body, uuid.uuid4().hex)])

    started = time.monotonic()
    result = process_message(sessions, stored.inbox_id, operation_for_queue=QUEUES.get,
                             max_message_bytes=MAX_MESSAGE_BYTES)
    elapsed = time.monotonic() - started

    with sessions() as session:
        row = session.get(InboxMessage, stored.inbox_id)
        events = list(session.execute(select(Event).where(Event.inbox_id == stored.inbox_id).order_by(Event.id)).scalars())
        leaked = session.scalar(text("SELECT count(*) FROM events WHERE payload::text LIKE '%root:x:0:0%'"))
    # The raw message is kept whole, whatever it is.
    assert row.body_sha256 == hashlib.sha256(body).hexdigest() and bytes(row.body) == body
    assert row.status == message.status, (row.status, row.last_error)
    [oms_event] = [e for e in events if e.type == "oms"]
    assert oms_event.name == OMS_EVENT_NAMES[message.queue] and oms_event.id == result.oms_event_id
    system = [e for e in events if e.type == "system"]
    if message.accepted:
        assert system == [], [(e.name, e.payload.get("error")) for e in system]
        assert result.channels == [("UA", "tatacliq")]
    else:
        [expected] = [e for e in system if e.name == message.event]
        assert expected.parent_id == oms_event.id and expected.level == "error"
        assert message.error in expected.payload["error"], expected.payload["error"]
        assert [a.id for a in result.alerts] == [e.id for e in system]
        if message.status == "failed":
            assert row.last_error == expected.payload["error"]
    assert leaked == 0, "something of /etc/passwd reached the event log"
    # Refusing is cheap: no message, however hostile, holds a worker for long.
    assert elapsed < 10, f"{message.name} took {elapsed:.1f}s"
