"""`status` and the runner's lifecycle: `start-runner`, `stop-runner`, `restart-runner`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from docker_model import settings
from docker_model.cli import runner_process
from docker_model.cli.client import NOT_RUNNING, RunnerClient, RunnerError
from docker_model.cli.console import console_url
from docker_model.cli.render import table
from docker_model.units import human_bytes

if TYPE_CHECKING:  # the JSON shapes, for the type checker only: the CLI imports little at start-up
    from docker_model.api_types import RpcEndpointStatus, VersionInfo


def split_status(text: str) -> tuple[str, str]:
    """`Running: llama.cpp on CPU` -> (`Running`, `llama.cpp on CPU`)."""
    state, _, details = text.partition(": ")
    return state, details


ENGINES_PATH = "/engines/v1/"
TOKEN_NEEDS = {"none": "no token", "management": "token for management, not inference", "all": "token everywhere"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON")
def status(as_json: bool) -> None:
    """Check whether Docker Model Runner is running."""
    client = RunnerClient()
    host_endpoint = f"{client.base_url}{ENGINES_PATH}"
    if not client.found_running():
        if as_json:
            click.echo(json.dumps({"running": False, "backends": {}, "endpoint": "", "endpointHost": host_endpoint}))
        else:
            click.echo(NOT_RUNNING)
            click.echo("Start it with: docker model start-runner", err=True)
        sys.exit(1)
    backends = client.get_json("/engines/status")
    version: VersionInfo = client.get_json("/version")
    container_url = version.get("container_url")
    servers = rpc_servers(client)
    if as_json:
        answer = {
            "running": True,
            "backends": backends,
            "endpoint": f"{container_url}{ENGINES_PATH}" if container_url else "",
            "endpointHost": host_endpoint,
            "console": console_url(client),
            "models_path": version.get("models_path"),
            "listeners": version.get("listeners", []),
            "rpc": servers,
        }
        click.echo(json.dumps(answer))
        return
    click.echo("Docker Model Runner is running\n")
    click.echo(
        table(("BACKEND", "STATUS", "DETAILS"), [[name, *split_status(text)] for name, text in backends.items()])
    )
    click.echo(f"\nModel store: {version.get('models_path')}")
    click.echo(f"Console:     {console_url(client)}")
    for listener in version.get("listeners", []):
        click.echo(f"Listening:   {listener['url']} ({TOKEN_NEEDS[listener['token']]})")
    if container_url:
        click.echo(f"Containers:  {container_url}{ENGINES_PATH}")
    else:
        click.echo(
            "Containers:  cannot reach it (listening on loopback only); `docker model start-runner --host` opens it"
        )
    if client.token and any(listener["token"] != "none" for listener in version.get("listeners", [])):
        click.echo(f"Token:       {shown_token(client)}")
    if servers:
        click.echo("\n" + table(("RPC SERVER", "USED BY", "STATE", "PROTOCOL", "OFFER"), [rpc_row(s) for s in servers]))


def rpc_servers(client: RunnerClient) -> list[RpcEndpointStatus]:
    """The RPC servers the runner's pools name; none from a runner that has no pools (Docker Model Runner)."""
    try:
        servers: list[RpcEndpointStatus] = client.get_json("/engines/rpc")
    except RunnerError as error:
        if error.status == 404:
            return []
        raise
    return servers


def rpc_row(server: RpcEndpointStatus) -> list[str]:
    holds = "" if server["measured"] is None else f", holds {human_bytes(server['measured'])}"
    if server["leased_to"]:
        state = f"leased to {server['leased_to']}{holds if server['reachable'] else ' (loading)'}"
    else:
        state = "reachable" if server["reachable"] else f"unusable: {server['error']}"
    offer = "-" if server["offer"] is None else human_bytes(server["offer"])
    return [server["endpoint"], ", ".join(server["used_by"]), state, server["protocol"] or "-", offer]


def shown_token(client: RunnerClient) -> str:
    """The token of this machine's runner in full; for another's, only where it comes from (as `context
    inspect` hides it): a terminal's scrollback or a shared screen should not hold it."""
    if client.is_local:
        return f"{client.token} (send it as `Authorization: Bearer TOKEN`, an OpenAI client's api_key)"
    if client.context is not None and not settings.runner_token():
        return f"(from context {client.context.name!r})"
    return "(from MODEL_RUNNER_TOKEN)"


def local_port(client: RunnerClient, fix: str = "manage it where it runs") -> int:
    """The port of `client`'s runner when it is this machine's own; else an error saying so, then `fix`."""
    port = runner_process.runner_port_of(client.base_url) if client.is_local else None
    if port is None:
        if client.context is None:
            raise click.ClickException(f"the runner at {client.base_url} is not this machine's own: {fix}")
        raise click.ClickException(
            f"the runner of context {client.context.name!r} at {client.base_url} is not this machine's own: {fix} "
            "(`docker model context use default` to use this machine's)"
        )
    return port


def address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return settings.ip_address(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an IP address (like 172.17.0.1, or 0.0.0.0 for all)") from None


listen_options = [
    click.option(
        "--host",
        callback=address,
        help="An address to listen on besides loopback: the Docker bridge's (172.17.0.1) for containers, "
        "0.0.0.0 for every address (default: MODEL_RUNNER_BIND)",
    ),
    click.option("--port", type=click.IntRange(1, 65535), help="The port to listen on (default: MODEL_RUNNER_PORT)"),
]


def with_listen_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(listen_options):
        command = option(command)
    return command


def client_at(port: int | None) -> RunnerClient:
    """The client of the runner on this machine's `port` (the configured runner when None)."""
    if port is None:
        return RunnerClient()
    scheme = "https" if settings.tls_files() else "http"
    return RunnerClient(f"{scheme}://127.0.0.1:{port}")


@click.command(name="start-runner")
@with_listen_options
def start_runner(host: str | None, port: int | None) -> None:
    """Start the runner in the background."""
    client = client_at(port)
    if client.found_running():
        wanted = host or settings.listen_address()
        version: VersionInfo = client.get_json("/version")
        serving = version["listeners"]
        if wanted and not any(item["kind"] == "wildcard" or extra_address(item["url"]) == wanted for item in serving):
            raise click.ClickException(
                f"Docker Model Runner is already running at {client.base_url}, but not on {wanted}: "
                f"run `docker model restart-runner --host {wanted}`"
            )
        click.echo(f"Docker Model Runner is already running at {client.base_url}")
        return
    local_port(client)
    client.ensure_running(host=host)
    click.echo(f"Docker Model Runner is running at {client.base_url}")
    if port is not None and client.base_url != settings.runner_host():
        click.echo(f"Set MODEL_RUNNER_PORT={port} for the other commands to find it", err=True)


@click.command(name="stop-runner")
@click.option("--port", type=click.IntRange(1, 65535), help="The port of the runner (default: MODEL_RUNNER_PORT)")
def stop_runner(port: int | None) -> None:
    """Stop the runner, unloading every model."""
    if runner_process.stop(local_port(client_at(port))):
        click.echo("Docker Model Runner stopped")
    else:
        click.echo(NOT_RUNNING)


@click.command(name="restart-runner")
@with_listen_options
@click.pass_context
def restart_runner(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Stop the runner, then start it again (on the addresses it had, unless told others)."""
    client = client_at(port)
    local_port(client)
    if host is None and client.found_running():
        version: VersionInfo = client.get_json("/version")
        host = next((extra_address(item["url"]) for item in version["listeners"] if item["kind"] != "loopback"), None)
    ctx.invoke(stop_runner, port=port)
    ctx.invoke(start_runner, host=host, port=port)


def extra_address(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""
