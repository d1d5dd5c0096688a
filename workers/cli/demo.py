"""The demo that `make run` sets up: channels on the sandbox, orders to pull, and the banner."""

from __future__ import annotations

import json
from pathlib import Path

import click
import requests
from sqlalchemy.engine import make_url

from wheel import demo
from wheel.db.models import Channel
from wheel.marketplaces import MARKETPLACES
from wheel.services.channels import add_channel
from wheel.services.schedules import ensure_schedules
from wheel.settings import redact_url
from workers.cli.output import fail, sessions_of, settings_of
from workers.queues import ALL_QUEUES


@click.group("demo")
def demo_group() -> None:
    """The demo set-up `make run` uses."""


@demo_group.command("seed")
@click.option("--sandbox-url", default=None, help="Sandbox base URL (default: from WHEEL_SANDBOX_HOST/PORT).")
@click.option("--sandbox-config", type=click.Path(dir_okay=False), default="var/sandbox.json", show_default=True,
              help="Where to write the sandbox's channel config.")
@click.pass_context
def demo_seed(ctx: click.Context, sandbox_url: str | None, sandbox_config: str) -> None:
    """Seed the demo channels (Tata CLiQ UA succeeds, UB gets HTTP 500; Flipkart UF; Amazon UZ)."""
    settings = settings_of(ctx)
    base = sandbox_url or f"http://{settings.sandbox_host}:{settings.sandbox_port}"
    settings.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with sessions_of(ctx).begin() as session:
        for channel in demo.DEMO_CHANNELS:
            add_channel(session, channel_id=channel.id, marketplace=channel.marketplace,
                        base_url=f"{base}/{channel.marketplace}", credentials_ref=channel.credentials_ref,
                        known_marketplaces=MARKETPLACES, retry_delays_s=demo.DEMO_RETRY_DELAYS_S, replace=True,
                        options=demo.options(channel, base))
            ensure_schedules(session, session.get(Channel, channel.id), tz_name=settings.display_tz)
            secret = settings.secrets_dir / channel.credentials_ref
            secret.write_text(channel.secret)
            secret.chmod(0o600)
    Path(sandbox_config).parent.mkdir(parents=True, exist_ok=True)
    Path(sandbox_config).write_text(json.dumps(demo.sandbox_config(), indent=2))
    click.echo(f"seeded demo channels {', '.join(c.id for c in demo.DEMO_CHANNELS)} "
               f"(secrets in {settings.secrets_dir}, sandbox config in {sandbox_config})")


@demo_group.command("orders")
@click.option("--channel", "channels", multiple=True, help="Sandbox channel(s) (default: UA, UF and UZ).")
@click.option("--count", type=click.IntRange(0, 100000), default=5, show_default=True, help="Orders per channel.")
@click.option("--cancel", type=click.IntRange(0, 100000), default=0, show_default=True,
              help="Also cancel this many of the channel's oldest open orders (a third of them in part). Cancel "
                   "orders Wheel has pulled already: an order cancelled before its pull never reaches the OMS, and "
                   "its cancellation waits (orders list --status held).")
@click.option("--sandbox-url", help="The sandbox's URL [http://WHEEL_SANDBOX_HOST:WHEEL_SANDBOX_PORT].")
@click.pass_context
def demo_orders(ctx: click.Context, channels: tuple[str, ...], count: int, cancel: int, sandbox_url: str | None) -> None:
    """Create orders (and cancellations) in the sandbox, for beat's pulls to bring to the OMS queues.

    Watch them arrive with `wheelctl oms tail orders` and `wheelctl orders list`; then cancel some
    with `wheelctl demo orders --count 0 --cancel 2`.
    """

    settings = settings_of(ctx)
    base = sandbox_url or f"http://{settings.sandbox_host}:{settings.sandbox_port}"
    for channel in channels or ("UA", "UF", "UZ"):
        try:
            if count:
                made = requests.post(f"{base}/_sandbox/orders", json={"channel": channel, "count": count, "lines_per_order": 2},
                                     timeout=30)
                made.raise_for_status()
                click.echo(f"{channel}: {len(made.json()['created'])} orders created")
            if cancel:
                done = requests.post(f"{base}/_sandbox/cancellations",
                                     json={"channel": channel, "count": cancel, "partial_share": 0.33}, timeout=30)
                done.raise_for_status()
                click.echo(f"{channel}: {len(done.json()['cancelled'])} orders cancelled")
        except requests.RequestException as exc:
            detail = getattr(getattr(exc, "response", None), "text", "") or str(exc)
            fail(f"the sandbox at {base} refused or is not running (start it with `make run`): {detail[:300]}")
    job = "orders" if count else "cancellations"
    click.echo(f"beat pulls them on each channel's schedule (`wheelctl jobs list`); `wheelctl jobs run-now UA {job}` "
               "pulls at once")


@demo_group.command("banner")
@click.pass_context
def demo_banner(ctx: click.Context) -> None:
    """Print what `make run` starts, where, and the command that sends a sample message."""


    s = settings_of(ctx)
    sandbox = f"http://{s.sandbox_host}:{s.sandbox_port}"
    db = make_url(s.database_url)
    lines = [
        "Wheel is starting (each process's output is prefixed with its name; Ctrl-C stops them all):",
        f"  bridge    OMS queues {', '.join(s.oms_queues.values())} on {redact_url(s.oms_url.get_secret_value())}",
        f"  workers   Celery queues {', '.join(ALL_QUEUES)} on {redact_url(s.redis_url)}",
        f"  beat      the scheduled pulls (`wheelctl jobs list`), the sweeper every {s.sweeper_interval_s:g}s, the health "
        f"checks every {s.health_check_interval_s:g}s, the retention purge every {s.retention_interval_s:g}s",
        f"  sandbox   {sandbox}  (calls: {sandbox}/_sandbox/calls, state: {sandbox}/_sandbox/state/UA)",
        f"  flower    http://{s.flower_address}:{s.flower_port}",
        f"  database  {db.database} on {db.host}:{db.port or 5432}; the event log: .venv/bin/wheelctl events",
        "",
        "In a second shell (UB is the demo's broken channel: the sandbox answers its pushes with HTTP 500):",
        f"  export PATH=$PWD/.venv/bin:$PATH WHEEL_SECRETS_DIR={s.secrets_dir}",
        "  wheelctl oms put ranging tests/samples/ranging.xml && sleep 5 && wheelctl events",
        "",
    ]
    click.echo("\n".join(lines))


COMMANDS = [demo_group]
