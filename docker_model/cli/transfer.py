"""`pull` and `push`: stream the runner's progress lines as bars (terminal) or plain lines (pipes).

`pull a b c` pulls several models at once, one line per model (a bar on a terminal), as
`docker compose pull` does; each model that fails is named at the end, the others are kept.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from docker_model.cli.client import RunnerClient, about_model, model_path, qualified
from docker_model.cli.render import safe_for_terminal
from docker_model.reference import InvalidReferenceError, display_name, parse_reference, short_id
from docker_model.units import human_bytes

if TYPE_CHECKING:  # the JSON shapes, for the type checker only: the CLI imports little at start-up
    from rich.progress import ProgressColumn

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
    from rich.progress import Progress, TaskID

    with Progress(*progress_columns(), console=Console(stderr=err), transient=False) as progress:
        tasks: dict[str, TaskID] = {}
        for event in events:
            if event.get("type") == "success":
                return event.get("message", "")
            layer = event.get("layer")
            if event.get("type") != "progress" or not layer:
                if event.get("message"):
                    progress.console.print(safe_for_terminal(event["message"]), markup=False, highlight=False)
                continue
            if layer["id"] not in tasks:
                tasks[layer["id"]] = progress.add_task(short_id(layer["id"]), total=layer["size"])
            progress.update(tasks[layer["id"]], completed=layer["current"])
    raise click.ClickException("the runner closed the stream before the transfer finished; run the command again")


def is_huggingface(model: str) -> bool:
    try:
        return parse_reference(model).is_huggingface
    except InvalidReferenceError:
        return False


def hf_token_for(client: RunnerClient, models: list[str]) -> str | None:
    """This shell's HF_TOKEN, for the Hugging Face models among `models`, as Docker Model Runner's CLI sends it
    (so that the runner's own environment need not have it); only to a runner reached over HTTPS or on this
    machine: over plain HTTP to another, a warning says it stays here."""
    from docker_model.distribution.registry.httpio import may_carry_credentials

    token = os.environ.get("HF_TOKEN")
    if not token or not any(is_huggingface(model) for model in models):
        return None
    if may_carry_credentials(client.base_url):
        return token
    click.echo(
        f"Warning: HF_TOKEN is not sent to the runner at {client.base_url}: plain HTTP to another machine would "
        "carry it in clear; use a context with --tls, or set HF_TOKEN in the runner's own environment",
        err=True,
    )
    return None


def create_body(model: str, hf_token: str | None) -> dict[str, str]:
    """The body of `POST /models/create`: a Hugging Face model carries `hf_token` (`hf_token_for`)."""
    body = {"from": model}
    if hf_token and is_huggingface(model):
        body["bearer-token"] = hf_token
    return body


def pull_model(client: RunnerClient, model: str, err: bool = False) -> None:
    """Pull with progress on stdout, or on stderr (`err`) when stdout is kept for something else."""
    qualified(model)  # a bad reference is named here, in the user's words
    body = create_body(model, hf_token_for(client, [model]))
    try:
        message = render_progress(client.stream_lines("POST", "/models/create", json_body=body), err)
    except KeyboardInterrupt:
        click.echo("\nPull interrupted; run the same command again to resume the download.", err=True)
        sys.exit(130)
    except click.ClickException as error:
        raise with_suggestion(client, model, error) from None
    click.echo(message, err=err)


def with_suggestion(client: RunnerClient, model: str, error: click.ClickException) -> click.ClickException:
    """The error, with the local models one typo away from `model` suggested when there are some."""
    near = near_local_models(client, model)
    return click.ClickException(f"{error.message}; did you mean {' or '.join(near)}?") if near else error


@dataclass
class PullState:
    """How far one model of a multi-model pull has got."""

    model: str
    total: int = 0
    layers: dict[str, int] = field(default_factory=dict)  # layer ID -> bytes done
    outcome: str | None = None  # the success message, once pulled
    error: str | None = None

    @property
    def done(self) -> int:
        return sum(self.layers.values())

    def line(self) -> str:
        if self.error is not None:
            return f"{self.model}: failed"
        if self.outcome is not None:
            return f"{self.model}: {self.outcome}"
        if not self.total:
            return f"{self.model}: waiting"
        return f"{self.model}: Downloaded {human_bytes(self.done)} of {human_bytes(self.total)}"


def pull_several(client: RunnerClient, models: list[str]) -> None:
    """Pull `models` in parallel, one progress line (or bar) each; exit 1 naming each model that failed."""
    for model in models:
        qualified(model)  # every name checked before any download starts
    client.ensure_running()
    hf_token = hf_token_for(client, models)
    states = {model: PullState(model) for model in models}
    news: queue.Queue[tuple[str, Any]] = queue.Queue()

    def pull_one(model: str) -> None:
        """Put each progress line of `model` in `news`, then its failure, if it failed: one failure each."""
        failure = click.ClickException("the runner closed the stream before the pull finished")
        try:
            for event in client.stream_lines("POST", "/models/create", json_body=create_body(model, hf_token)):
                news.put((model, event))
                if event.get("type") == "success":
                    return
        except click.ClickException as error:
            failure = error
        except Exception as error:  # the connection broke: this model failed, the others go on
            failure = click.ClickException(f"connection to the runner lost ({type(error).__name__})")
        with contextlib.suppress(Exception):  # a suggestion is a bonus: asking for it may fail too
            failure = with_suggestion(client, model, failure)
        news.put((model, failure))

    for model in models:
        threading.Thread(target=pull_one, args=(model,), name=f"pull {model}", daemon=True).start()
    try:
        show = show_bars if sys.stdout.isatty() else show_lines
        show(states, news)
    except KeyboardInterrupt:
        click.echo("\nPull interrupted; run the same command again to resume the downloads.", err=True)
        sys.exit(130)
    failed = [state for state in states.values() if state.error is not None]
    for state in failed:
        click.echo(f"Error: failed to pull {state.model}: {state.error}", err=True)
    if failed:
        sys.exit(1)


def take(states: dict[str, PullState], model: str, news: Any) -> bool:
    """Apply one piece of news about `model`; True when that model's pull has ended (pulled or failed)."""
    state = states[model]
    if isinstance(news, click.ClickException):
        state.error = news.message
        return True
    if news.get("type") == "success":
        state.outcome = news.get("message") or "pulled"
        return True
    layer = news.get("layer")
    if news.get("type") == "progress" and layer:
        state.total = news.get("total") or state.total
        state.layers[layer["id"]] = layer["current"]
    return False


def show_lines(states: dict[str, PullState], news: queue.Queue[tuple[str, Any]]) -> None:
    """Not a terminal: a model's line when it changed, at most once a second each, and its outcome."""
    last_at: dict[str, float] = {}
    pending = len(states)
    while pending:
        model, item = news.get()
        ended = take(states, model, item)
        pending -= ended
        state = states[model]
        due = time.monotonic() - last_at.get(model, 0.0) >= PLAIN_PROGRESS_INTERVAL_SECONDS
        if (ended and state.error is None) or (not ended and state.total and due):
            last_at[model] = time.monotonic()
            click.echo(state.line())


def progress_columns() -> tuple[ProgressColumn, ...]:
    """A transfer's progress bar: what it is (plain text, never rich markup), the bar, bytes and speed."""
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn

    return (TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), TransferSpeedColumn())


def show_bars(states: dict[str, PullState], news: queue.Queue[tuple[str, Any]]) -> None:
    from rich.progress import Progress, TaskID

    with Progress(*progress_columns(), transient=False) as progress:
        tasks: dict[str, TaskID] = {model: progress.add_task(model, total=None) for model in states}
        pending = len(states)
        while pending:
            model, item = news.get()
            pending -= take(states, model, item)
            state = states[model]
            label = state.line() if state.error is not None or state.outcome is not None else model
            progress.update(tasks[model], description=label, total=state.total or None, completed=state.done)


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
@click.argument("models", nargs=-1, required=True)
def pull(models: tuple[str, ...]) -> None:
    """Pull models from Docker Hub, Hugging Face or another registry (several at once in parallel)."""
    wanted = list(dict.fromkeys(models))  # each model once, in the order given
    if len(wanted) == 1:
        pull_model(RunnerClient(), wanted[0])
    else:
        pull_several(RunnerClient(), wanted)


@click.command()
@click.argument("model")
def push(model: str) -> None:
    """Push a model to its registry."""
    client = RunnerClient()
    with about_model(
        model, "push sends a model you have ('docker model list'); name a registry with 'docker model tag'"
    ):
        click.echo(render_progress(client.stream_lines("POST", model_path(model, "/push"))))
