"""Replaying a stored OMS message, after the operator fixed what was wrong with it.

The replay is a new inbox row with the place of the message it replays (`inbox.version`): its
values are as old as the original's, so they never overwrite what a newer message set (they are
logged as superseded instead), and they replace what an older one set.
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import InboxMessage

# The transport key of a replay: replay:<original id>:<uuid>.
REPLAY_KEY_PREFIX = "replay:"


class ReplayError(LookupError):
    pass


def replay(sessions: sessionmaker[Session], inbox_id: int, body: bytes | None = None) -> int:
    """Store the message again as a new inbox row (the original stays as it was), in the original's
    place in the order; its new id."""
    with sessions.begin() as session:
        original = session.get(InboxMessage, inbox_id)
        if original is None:
            raise ReplayError(f"no inbox message {inbox_id}")
        new_body = original.body if body is None else body
        copy = InboxMessage(
            version=original.version if original.version is not None else original.id,
            queue=original.queue,
            transport_message_id=f"{REPLAY_KEY_PREFIX}{inbox_id}:{uuid.uuid4().hex}",
            body=new_body,
            body_sha256=hashlib.sha256(new_body).hexdigest(),
            size=len(new_body),
            headers={"replay_of": inbox_id, "corrected": body is not None},
        )
        session.add(copy)
        session.flush()
        return copy.id
