"""Channels: a seller account on a marketplace, with its URL, credentials reference and rules."""

from __future__ import annotations

import json

import click

from wheel.db.models import Channel
from wheel.marketplaces import MARKETPLACES
from wheel.secrets import SecretNotFound
from wheel.services.channels import (
    ChannelError,
    add_channel,
    list_channels,
    set_enabled,
    update_channel,
)
from wheel.services.schedules import ensure_schedules
from workers import bootstrap
from workers.cli.output import fail, sessions_of, settings_of, table


@click.group()
def channels() -> None:
    """List, add, enable and disable channels (seller accounts on marketplaces)."""


@channels.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def channels_list(ctx: click.Context, as_json: bool) -> None:
    """List the channels."""

    with sessions_of(ctx)() as session:
        rows = list_channels(session)
    if as_json:
        for c in rows:
            click.echo(json.dumps({"id": c.id, "marketplace": c.marketplace, "base_url": c.base_url,
                                   "credentials_ref": c.credentials_ref, "enabled": c.enabled,
                                   "retry_delays_s": c.retry_delays_s, "options": c.options,
                                   "buffer_stock": c.buffer_stock, "max_quantity": c.max_quantity,
                                   "shadow": c.shadow, "quota_scale": c.quota_scale, "quotas": c.quotas}))
        return
    table(["id", "marketplace", "enabled", "mode", "buffer", "cap", "base URL", "credentials ref", "retry delays (s)"],
           [[c.id, c.marketplace, "yes" if c.enabled else "no", "shadow" if c.shadow else "live", c.buffer_stock,
             c.max_quantity if c.max_quantity is not None else "-", c.base_url, c.credentials_ref,
             ",".join(f"{d:g}" for d in c.retry_delays_s) if c.retry_delays_s else "default"] for c in rows])


def _delays(_ctx, _param, value: str | None) -> list[float] | None:
    if not value:
        return None
    try:
        delays = [float(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter("give seconds separated by commas, e.g. 5,30,120") from None
    if any(d < 0 for d in delays):
        raise click.BadParameter("delays cannot be negative")
    return delays


@channels.command("add")
@click.argument("channel_id")
@click.option("--marketplace", required=True, type=click.Choice(MARKETPLACES))
@click.option("--base-url", required=True, help="The marketplace API's base URL for this channel.")
@click.option("--credentials-ref", required=True,
              help="Name of the secret: env WHEEL_SECRET_<REF> or file <WHEEL_SECRETS_DIR>/<ref>.")
@click.option("--retry-delays", callback=_delays, help="Seconds before each retry, e.g. 5,30,120.")
@click.option("--disabled", is_flag=True, help="Add it disabled.")
@click.option("--replace", is_flag=True, help="Overwrite a channel of the same id.")
@click.option("--option", "options", multiple=True, callback=lambda c, p, v: _pairs(v, "KEY=VALUE"),
              help="Marketplace setting KEY=VALUE (Amazon: seller_id, lwa_url; Flipkart: location_id). Repeatable.")
@click.option("--buffer-stock", type=click.IntRange(0), help="Units held back: pushed = quantity - buffer.")
@click.option("--max-quantity", type=click.IntRange(0), help="Never list more than this many units.")
@click.option("--shadow", is_flag=True, help="Shadow mode: record every call it would make, send nothing.")
@click.pass_context
def channels_add(ctx, channel_id, marketplace, base_url, credentials_ref, retry_delays, disabled, replace,
                 options, buffer_stock, max_quantity, shadow) -> None:
    """Add a channel, e.g. `wheelctl channels add UA --marketplace tatacliq --base-url https://... --credentials-ref tatacliq-ua`.

    The secret named by --credentials-ref is Tata CLiQ's bearer token, Amazon's JSON
    {"client_id", "client_secret", "refresh_token"}, or Flipkart's JSON {"app_id", "app_secret"}.
    """

    try:
        with sessions_of(ctx).begin() as session:
            add_channel(session, channel_id=channel_id, marketplace=marketplace, base_url=base_url,
                        credentials_ref=credentials_ref, known_marketplaces=MARKETPLACES,
                        enabled=not disabled, retry_delays_s=retry_delays, replace=replace,
                        options=options or None, buffer_stock=buffer_stock, max_quantity=max_quantity,
                        shadow=shadow or None)
            session.flush()
            created = ensure_schedules(session, session.get(Channel, channel_id), tz_name=settings_of(ctx).display_tz)
    except ChannelError as exc:
        fail(str(exc))
    click.echo(f"channel {channel_id} saved" + (f"; scheduled pulls: {', '.join(created)} (see `wheelctl jobs list`)" if created else ""))
    try:
        bootstrap.secret_store(settings_of(ctx)).get(credentials_ref)
    except SecretNotFound as exc:
        # Saved all the same (the secret may be put in place next), but its pushes and pulls fail until then.
        click.secho(f"warning: {exc}; until it is there, the channel's pushes and pulls fail "
                    f"(`wheelctl channels disable {channel_id}` to wait)", fg="yellow", err=True)


def _pairs(values, form: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r}: give {form}")
        pairs[key.strip()] = rest.strip()
    return pairs


def _quotas(_ctx, _param, values) -> dict[str, list[float]]:
    quotas = {}
    for operation, value in _pairs(values, "OPERATION=RATE/BURST").items():
        try:
            rate, burst = (float(part) for part in value.split("/"))
        except ValueError:
            raise click.BadParameter(f"{operation}={value}: give requests per second and burst, e.g. 5/5") from None
        quotas[operation] = [rate, burst]
    return quotas


@channels.command("set")
@click.argument("channel_id")
@click.option("--base-url", help="The marketplace API's base URL.")
@click.option("--option", "options", multiple=True, callback=lambda c, p, v: _pairs(v, "KEY=VALUE"),
              help="Marketplace setting KEY=VALUE; KEY= removes it. Repeatable.")
@click.option("--buffer-stock", type=click.IntRange(0), help="Units held back: pushed = quantity - buffer.")
@click.option("--max-quantity", type=click.IntRange(0), help="Never list more than this many units.")
@click.option("--no-max-quantity", is_flag=True, help="Remove the cap.")
@click.option("--shadow/--live", default=None, help="Shadow mode (send nothing) or live.")
@click.option("--quota", "quotas", multiple=True, callback=_quotas,
              help="Override a quota: OPERATION=RATE/BURST, e.g. patchListingsItem=5/5. Repeatable.")
@click.option("--quota-scale", type=float, help="Multiply every documented quota (e.g. a raised allowance).")
@click.option("--retry-delays", callback=_delays, help="Seconds before each retry, e.g. 5,30,120.")
@click.pass_context
def channels_set(ctx, channel_id, base_url, options, buffer_stock, max_quantity, no_max_quantity, shadow, quotas,
                 quota_scale, retry_delays) -> None:
    """Change a channel's settings. Buffer and cap changes apply from the next push (or `wheelctl resync`)."""

    changes = dict(base_url=base_url, options={k: (v or None) for k, v in options.items()} or None,
                   buffer_stock=buffer_stock, max_quantity=max_quantity, shadow=shadow, quotas=quotas or None,
                   quota_scale=quota_scale, retry_delays_s=retry_delays)
    try:
        with sessions_of(ctx).begin() as session:
            channel = update_channel(session, channel_id, **{k: v for k, v in changes.items() if v is not None})
            if no_max_quantity:
                channel.max_quantity = None
    except ChannelError as exc:
        fail(str(exc))
    click.echo(f"channel {channel_id} updated")


@channels.command("disable")
@click.argument("channel_id")
@click.pass_context
def channels_disable(ctx: click.Context, channel_id: str) -> None:
    """Stop sending anything to a channel (its items get system/channel-disabled events)."""
    _set_enabled(ctx, channel_id, False)


@channels.command("enable")
@click.argument("channel_id")
@click.pass_context
def channels_enable(ctx: click.Context, channel_id: str) -> None:
    """Start sending to a disabled channel again."""
    _set_enabled(ctx, channel_id, True)


def _set_enabled(ctx: click.Context, channel_id: str, enabled: bool) -> None:

    try:
        with sessions_of(ctx).begin() as session:
            set_enabled(session, channel_id, enabled)
    except ChannelError as exc:
        fail(str(exc))
    click.echo(f"channel {channel_id} {'enabled' if enabled else 'disabled'}")


COMMANDS = [channels]
