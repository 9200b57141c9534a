"""`docker model version`: client version and platform, plus the runner's when it is running."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

import click

from docker_model import DMR_COMPATIBILITY, __version__

if TYPE_CHECKING:  # the JSON shapes, for the type checker only: the CLI imports little at start-up
    from docker_model.api_types import VersionInfo


def platform_name() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return f"{platform.system().lower()}/{arch}"


@click.command()
def version() -> None:
    """Show the Docker Model Runner version."""
    click.echo("Client:")
    click.echo(f" Version:    {__version__} (implements Docker Model Runner {DMR_COMPATIBILITY})")
    click.echo(f" OS/Arch:    {platform_name()}")
    from docker_model.cli.client import RunnerClient

    client = RunnerClient()
    click.echo("\nServer:")
    if not client.is_running():
        click.echo(f" Docker Model Runner is not running at {client.base_url}")
        return
    server: VersionInfo = client.get_json("/version")
    click.echo(f" Version:    {server['version']}")
    click.echo(f" Engine:     {server.get('engine', '')}")
