"""Sending the alert for an error event."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from wheel.db.models import Event
from wheel.notifications import Alerter, alert_text


def send_alert(sessions: sessionmaker[Session], event_id: int, *, alerter: Alerter, dashboard_url: str) -> None:
    with sessions() as session:
        event = session.get(Event, event_id)
        if event is None:
            return
        data = {
            "id": event.id,
            "parent_id": event.parent_id,
            "name": event.name,
            "channel_id": event.channel_id,
            "payload": event.payload,
        }
    alerter.send(alert_text(data, dashboard_url))
