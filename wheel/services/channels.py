"""Managing channels (the CLI's `channels` commands)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from wheel.db.models import Channel
from wheel.marketplaces.base import ChannelConfig, MarketplaceAdapter, QuotaGate

AdapterLookup = Callable[[ChannelConfig], MarketplaceAdapter]
GateLookup = Callable[[Channel, MarketplaceAdapter], QuotaGate]


def channel_config(channel: Channel) -> ChannelConfig:
    """What an adapter is told of its channel (a plain value, no database row)."""
    return ChannelConfig(channel.id, channel.marketplace, channel.base_url, channel.credentials_ref,
                         options=dict(channel.options or {}), version=channel.updated_at.isoformat())


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
    **settings: Any,
) -> None:
    """Add a channel; `settings` are further columns (options, buffer_stock, max_quantity, shadow,
    quota_scale, quotas), checked by `check_settings`."""
    channel_id = channel_id.strip()
    if not channel_id:
        raise ChannelError("a channel id cannot be blank")
    if marketplace not in known_marketplaces:
        raise ChannelError(f"unknown marketplace {marketplace!r}; choose one of: {', '.join(known_marketplaces)}")
    if not base_url.startswith(("http://", "https://")):
        raise ChannelError(f"base URL {base_url!r} must start with http:// or https://")
    values = dict(
        id=channel_id, marketplace=marketplace, base_url=base_url, credentials_ref=credentials_ref,
        enabled=enabled, retry_delays_s=retry_delays_s, **check_settings(settings),
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


SETTINGS = ("options", "buffer_stock", "max_quantity", "shadow", "quota_scale", "quotas", "retry_delays_s", "base_url")


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ChannelError(f"unknown channel settings: {', '.join(sorted(unknown))}")
    if settings.get("buffer_stock") is not None and settings["buffer_stock"] < 0:
        raise ChannelError("buffer stock cannot be negative")
    if settings.get("max_quantity") is not None and settings["max_quantity"] < 0:
        raise ChannelError("the quantity cap cannot be negative")
    if settings.get("quota_scale") is not None and settings["quota_scale"] <= 0:
        raise ChannelError("the quota scale must be above 0")
    for operation, value in (settings.get("quotas") or {}).items():
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in value)):
            raise ChannelError(f"quota for {operation} must be [requests per second, burst], both above 0")
    return {k: v for k, v in settings.items() if v is not None}


def update_channel(session: Session, channel_id: str, **settings: Any) -> Channel:
    """Change some of a channel's settings (`options` are merged; an option set to None is removed)."""
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise ChannelError(f"no channel {channel_id}")
    for name, value in check_settings(settings).items():
        if name == "options":
            merged = {**(channel.options or {}), **value}
            value = {k: v for k, v in merged.items() if v is not None}
        if name == "quotas":
            value = {**(channel.quotas or {}), **value}
        setattr(channel, name, value)
    channel.updated_at = func.now()
    return channel


def set_enabled(session: Session, channel_id: str, enabled: bool) -> None:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise ChannelError(f"no channel {channel_id}")
    channel.enabled = enabled
    channel.updated_at = func.now()
