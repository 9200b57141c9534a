"""`pull` and `push`: stream the runner's progress lines as bars (terminal) or plain lines (pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from docker_model.cli.client import RunnerClient, about_model, model_path, qualified
from docker_model.reference import display_name, short_id

if TYPE_CHECKING:  # the JSON shapes, for the type checker only: the CLI imports little at start-up
    from docker_model.api_types import ModelInfo, ProgressLine


PLAIN_PROGRESS_INTERVAL_SECONDS = 1.0


def render_progress(events: Iterator[ProgressLine], err: bool = False) -> str:
    """Show progress events on stdout (stderr with `err`); returns the final success message."""
    if (sys.stderr if err else sys.stdout).isatty():
        return render_bars(events, err)
    last_line_at, last_line = 0.0, ""
    for event in events:
        if event.get("type") == "success":
            return event.get("message", "")
        message = event.get("message", "")
        if event.get("type") == "progress":
            layer = event.get("layer")
            finished = layer is not None and layer["current"] == layer["size"]
            due = finished or time.monotonic() - last_line_at >= PLAIN_PROGRESS_INTERVAL_SECONDS
            if not due or message == last_line:  # a line says something new, or nothing is printed
                continue
            last_line_at = time.monotonic()
        if message:
            click.echo(message, err=err)
            last_line = message
    raise click.ClickException("the runner closed the stream before the transfer finished; run the command again")


def render_bars(events: Iterator[ProgressLine], err: bool) -> str:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=err), transient=False) as progress:
        tasks: dict[str, TaskID] = {}
        for event in events:
            if event.get("type") == "success":
                return event.get("message", "")
            layer = event.get("layer")
            if event.get("type") != "progress" or not layer:
                if event.get("message"):
                    progress.console.print(event["message"])
                continue
            if layer["id"] not in tasks:
                tasks[layer["id"]] = progress.add_task(short_id(layer["id"]), total=layer["size"])
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
    except click.ClickException as error:
        near = near_local_models(client, model)
        if not near:
            raise
        raise click.ClickException(f"{error.message}; did you mean {' or '.join(near)}?") from None
    click.echo(message, err=err)


def near_local_models(client: RunnerClient, wanted: str) -> list[str]:
    """Local models whose name is one typo (an edit of one character) away from `wanted`."""
    wanted = display_name(qualified(wanted))
    models: list[ModelInfo] = client.get_json("/models")
    names = {display_name(tag) for model in models for tag in model.get("tags") or []}
    return sorted(name for name in names if one_edit_apart(name, wanted))


def one_edit_apart(a: str, b: str) -> bool:
    """True when one insertion, deletion, substitution or swap of two neighbours turns `a` into `b`."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    swapped = len(a) == len(b) and a[start : start + 2] == b[start : start + 2][::-1]
    if swapped and a[start + 2 :] == b[start + 2 :]:
        return True
    return a[start + (len(a) >= len(b)) :] == b[start + (len(b) >= len(a)) :]


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
