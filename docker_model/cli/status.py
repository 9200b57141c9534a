"""`status` and the runner's lifecycle: `start-runner`, `stop-runner`, `restart-runner`."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from docker_model.cli import runner_process
from docker_model.cli.client import NOT_RUNNING, RunnerClient
from docker_model.cli.render import table

if TYPE_CHECKING:  # the JSON shapes, for the type checker only: the CLI imports little at start-up
    from docker_model.api_types import VersionInfo


def split_status(text: str) -> tuple[str, str]:
    """`Running: llama.cpp on CPU` -> (`Running`, `llama.cpp on CPU`)."""
    state, _, details = text.partition(": ")
    return state, details


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON")
def status(as_json: bool) -> None:
    """Check whether Docker Model Runner is running."""
    client = RunnerClient()
    endpoint = f"{client.base_url}/engines/v1/"
    if not client.found_running():
        if as_json:
            click.echo(json.dumps({"running": False, "backends": {}, "endpoint": endpoint}))
        else:
            click.echo(NOT_RUNNING)
            click.echo("Start it with: docker model start-runner", err=True)
        sys.exit(1)
    backends = client.get_json("/engines/status")
    version: VersionInfo = client.get_json("/version")
    models_path = version.get("models_path")
    if as_json:
        click.echo(
            json.dumps({"running": True, "backends": backends, "endpoint": endpoint, "models_path": models_path})
        )
        return
    click.echo("Docker Model Runner is running\n")
    click.echo(
        table(("BACKEND", "STATUS", "DETAILS"), [[name, *split_status(text)] for name, text in backends.items()])
    )
    click.echo(f"\nModel store: {models_path}")


def local_port(client: RunnerClient) -> int:
    port = runner_process.runner_port_of(client.base_url)
    if port is None:
        raise click.ClickException(f"the runner at {client.base_url} is not on this machine; manage it where it runs")
    return port


@click.command(name="start-runner")
def start_runner() -> None:
    """Start the runner in the background."""
    client = RunnerClient()
    if client.found_running():
        click.echo(f"Docker Model Runner is already running at {client.base_url}")
        return
    local_port(client)
    client.ensure_running()
    click.echo(f"Docker Model Runner is running at {client.base_url}")


@click.command(name="stop-runner")
def stop_runner() -> None:
    """Stop the runner, unloading every model."""
    client = RunnerClient()
    if runner_process.stop(local_port(client)):
        click.echo("Docker Model Runner stopped")
    else:
        click.echo(NOT_RUNNING)


@click.command(name="restart-runner")
@click.pass_context
def restart_runner(ctx: click.Context) -> None:
    """Stop the runner, then start it again."""
    ctx.invoke(stop_runner)
    ctx.invoke(start_runner)
