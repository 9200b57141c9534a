"""`pull` and `push`: stream the runner's progress lines as bars (terminal) or plain lines (pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import click

from docker_model.cli.client import RunnerClient, about_model, model_path, qualified

PLAIN_PROGRESS_INTERVAL_SECONDS = 1.0


def render_progress(events: Iterator[dict], err: bool = False) -> str:
    """Show progress events on stdout (stderr with `err`); returns the final success message."""
    if (sys.stderr if err else sys.stdout).isatty():
        return render_bars(events, err)
    last_line_at = 0.0
    for event in events:
        if event.get("type") == "success":
            return event.get("message", "")
        if event.get("type") == "progress":
            layer = event.get("layer") or {}
            finished = layer.get("current") == layer.get("size")
            if finished or time.monotonic() - last_line_at >= PLAIN_PROGRESS_INTERVAL_SECONDS:
                click.echo(event.get("message", ""), err=err)
                last_line_at = time.monotonic()
        elif event.get("message"):
            click.echo(event["message"], err=err)
    raise click.ClickException("the runner closed the stream before the transfer finished; run the command again")


def render_bars(events: Iterator[dict], err: bool) -> str:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=err), transient=False) as progress:
        tasks: dict[str, int] = {}
        for event in events:
            if event.get("type") == "success":
                return event.get("message", "")
            layer = event.get("layer")
            if event.get("type") != "progress" or not layer:
                if event.get("message"):
                    progress.console.print(event["message"])
                continue
            if layer["id"] not in tasks:
                tasks[layer["id"]] = progress.add_task(layer["id"].removeprefix("sha256:")[:12], total=layer["size"])
            progress.update(tasks[layer["id"]], completed=layer["current"])
    raise click.ClickException("the runner closed the stream before the transfer finished; run the command again")


def pull_model(client: RunnerClient, model: str, err: bool = False) -> None:
    """Pull with progress on stdout, or on stderr (`err`) when stdout is kept for something else."""
    qualified(model)  # a bad reference is named here, in the user's words
    try:
        message = render_progress(client.stream_lines("POST", "/models/create", json_body={"from": model}), err)
    except KeyboardInterrupt:
        click.echo("\nPull interrupted; run the same command again to resume the download.", err=True)
        sys.exit(130)
    click.echo(message, err=err)


@click.command()
@click.argument("model")
def pull(model: str) -> None:
    """Pull a model from Docker Hub, Hugging Face or another registry."""
    pull_model(RunnerClient(), model)


@click.command()
@click.argument("model")
def push(model: str) -> None:
    """Push a model to its registry."""
    client = RunnerClient()
    with about_model(
        model, "push sends a model you have ('docker model list'); name a registry with 'docker model tag'"
    ):
        click.echo(render_progress(client.stream_lines("POST", model_path(model, "/push"))))
