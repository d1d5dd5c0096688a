"""Managing channels (the CLI's `channels` commands)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from wheel.db.models import Channel


class ChannelError(ValueError):
    pass


def list_channels(session: Session) -> list[Channel]:
    return list(session.execute(select(Channel).order_by(Channel.id)).scalars())


def add_channel(
    session: Session,
    *,
    channel_id: str,
    marketplace: str,
    base_url: str,
    credentials_ref: str,
    known_marketplaces: Sequence[str],
    enabled: bool = True,
    retry_delays_s: list[float] | None = None,
    replace: bool = False,
) -> None:
    channel_id = channel_id.strip()
    if not channel_id:
        raise ChannelError("a channel id cannot be blank")
    if marketplace not in known_marketplaces:
        raise ChannelError(f"unknown marketplace {marketplace!r}; choose one of: {', '.join(known_marketplaces)}")
    if not base_url.startswith(("http://", "https://")):
        raise ChannelError(f"base URL {base_url!r} must start with http:// or https://")
    values = dict(
        id=channel_id, marketplace=marketplace, base_url=base_url, credentials_ref=credentials_ref,
        enabled=enabled, retry_delays_s=retry_delays_s,
    )
    statement = insert(Channel).values(**values)
    if replace:
        statement = statement.on_conflict_do_update(
            index_elements=[Channel.id], set_={**values, "updated_at": func.now()}
        )
    else:
        statement = statement.on_conflict_do_nothing()
    if session.execute(statement.returning(Channel.id)).scalar_one_or_none() is None:
        raise ChannelError(f"channel {channel_id} exists already (use --replace to change it)")


def set_enabled(session: Session, channel_id: str, enabled: bool) -> None:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise ChannelError(f"no channel {channel_id}")
    channel.enabled = enabled
    channel.updated_at = func.now()
