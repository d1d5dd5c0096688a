"""The long-running processes started from `wheelctl`: the bridge, the marketplace sandbox, Flower.

(The workers and beat are Celery's own commands: `celery -A workers.app worker|beat`.)
"""

from __future__ import annotations

import importlib.util
import os
import sys

import click

from workers import bootstrap
from workers.cli.output import fail, settings_of
from workers.flower import FlowerConfigError, flower_launch


@click.command()
@click.option("--batch-size", type=click.IntRange(1, 5000), help="Messages per inbox transaction.")
@click.option("--accept-existing-queues", is_flag=True,
              help="RabbitMQ: consume OMS queues that exist with other arguments than Wheel declares (no single "
                   "active consumer, no dead-letter route), as they are. Safe only while exactly one bridge runs.")
@click.pass_context
def bridge(ctx: click.Context, batch_size: int | None, accept_existing_queues: bool) -> None:
    """Consume the four OMS queues into the inbox and hand each message to the workers.

    One bridge consumes at a time; another started alongside waits as a hot standby and takes
    over when the first goes (RabbitMQ: single active consumer; IBM MQ: exclusive input).
    Stops cleanly on SIGTERM or Ctrl-C, finishing the batch in hand.
    """
    settings = settings_of(ctx)
    if batch_size:
        settings = settings.model_copy(update={"bridge_batch_size": batch_size})
    bootstrap.run_bridge(settings, accept_existing_queues=accept_existing_queues)


@click.command()
@click.option("--host", help="Address to listen on [WHEEL_SANDBOX_HOST].")
@click.option("--port", type=int, help="Port to listen on [WHEEL_SANDBOX_PORT].")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help='JSON: {"channels": {"UA": {"marketplace": "tatacliq", "token": "...", "fail_status": 500}}}')
@click.pass_context
def sandbox(ctx: click.Context, host: str | None, port: int | None, config_path: str | None) -> None:
    """Run the marketplace sandbox: the marketplaces' APIs, emulated, for demos and tests.

    Steer it over HTTP: PUT /_sandbox/channels/<id> (token, fail_status, fail_times, delay_s,
    refuse_token), GET /_sandbox/calls, GET /_sandbox/state/<id>, POST /_sandbox/reset.
    """
    # The sandbox is a package of its own that Wheel never imports (docs/architecture.md): this
    # process becomes `python -m sandbox`, keeping its pid for whoever started it.
    if importlib.util.find_spec("sandbox") is None:
        fail("the sandbox is not installed here: it comes with a development install (pip install -e '.[run]')")
    settings = settings_of(ctx)
    argv = [sys.executable, "-m", "sandbox", "--host", host or settings.sandbox_host,
            "--port", str(port if port is not None else settings.sandbox_port)]
    if config_path:
        argv += ["--config", config_path]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


@click.command()
@click.pass_context
def flower(ctx: click.Context) -> None:
    """Run Flower, Celery's monitor, on WHEEL_FLOWER_ADDRESS:WHEEL_FLOWER_PORT (127.0.0.1:5555).

    It asks for WHEEL_FLOWER_BASIC_AUTH (user:password), or the secret flower-basic-auth; without
    either it listens on a loopback address only. The password is never printed or logged.
    """
    try:
        launch = flower_launch(settings_of(ctx), os.environ)
    except FlowerConfigError as exc:
        fail(str(exc))
    who = f"basic auth for {', '.join(launch.users)}" if launch.authenticated else "no password (loopback only)"
    click.echo(f"flower on {launch.url()} ({who})")
    sys.stdout.flush()
    os.execve(launch.argv[0], launch.argv, launch.env)


COMMANDS = [bridge, sandbox, flower]
