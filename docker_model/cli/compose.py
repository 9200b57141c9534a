"""`compose` (hidden): the provider protocol Docker Compose speaks for `provider: {type: model}` services.

Compose runs the plugin binary itself: `docker-model compose metadata`, then
`docker-model compose --project-name=P up --model=M [--context-size=N] [--runtime-flags=F] SERVICE`, and
reads one JSON object per line on stdout, `{"type": "info|error|setenv|debug", "message": ...}`. Each
`setenv KEY=VALUE` becomes `<SERVICE>_KEY` in the services that depend on this one (`LLM_URL`,
`LLM_MODEL`); an `error` line stops Compose with its message. `down` has nothing to tear down: models stay
in the store, and unload on their own keep-alive.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import click

from docker_model.cli.client import RunnerClient, RunnerError, qualified
from docker_model.cli.status import ENGINES_PATH

if TYPE_CHECKING:
    from docker_model.api_types import ListenerInfo, ModelInfo, ProgressLine, VersionInfo

BACKEND = "llama.cpp"
SPECULATIVE = ("speculative-draft-model", "speculative-num-tokens", "speculative-min-acceptance-rate")


def say(kind: str, message: str) -> None:
    click.echo(json.dumps({"type": kind, "message": message}))


def fail(message: str) -> NoReturn:
    say("error", message)
    sys.exit(1)


@click.group(hidden=True)
@click.option("--project-name", help="The Compose project's name")
def compose(project_name: str | None) -> None:
    """The Docker Compose provider protocol (used by Compose, not by hand)."""


@compose.command()
def metadata() -> None:
    """Describe the parameters of `up` and `down` for Compose."""

    def parameter(name: str, kind: str, description: str, default: str | None = None, required: bool = False) -> dict:
        entry: dict[str, Any] = {"name": name, "description": description, "required": required, "type": kind}
        return entry | ({"default": default} if default is not None else {})

    up_parameters = [
        parameter("backend", "string", "inference backend to use (llama.cpp)", BACKEND),
        parameter("context-size", "int64", "context size for the model, in tokens per request", "-1"),
        parameter("model", "stringArray", "model to use", "[]", required=True),
        parameter("runtime-flags", "string", "runtime flags for the inference engine, as one string"),
        parameter("speculative-draft-model", "string", "not supported: refused when set"),
        parameter("speculative-min-acceptance-rate", "float64", "not supported: refused when set", "0"),
        parameter("speculative-num-tokens", "int", "not supported: refused when set", "0"),
    ]
    click.echo(
        json.dumps(
            {"description": "Docker Model Runner", "up": {"parameters": up_parameters}, "down": {"parameters": None}}
        )
    )


@compose.command()
@click.option("--model", "models", multiple=True, help="Model to use (repeatable)")
@click.option("--context-size", type=int, default=-1, help="Context size in tokens per request (-1: the model's)")
@click.option("--runtime-flags", default="", help="Runtime flags for the engine, as one string")
@click.option("--backend", default=BACKEND, help="Inference backend (llama.cpp)")
@click.option("--speculative-draft-model", default="")
@click.option("--speculative-num-tokens", type=int, default=0)
@click.option("--speculative-min-acceptance-rate", type=float, default=0.0)
@click.argument("service", required=False)
def up(
    models: tuple[str, ...],
    context_size: int,
    runtime_flags: str,
    backend: str,
    speculative_draft_model: str,
    speculative_num_tokens: int,
    speculative_min_acceptance_rate: float,
    service: str | None,
) -> None:
    """Pull, configure and load the models, make the runner reachable from containers, and hand Compose the
    URL and model names."""
    try:
        checked = check_up(models, context_size, runtime_flags, backend)
        if speculative_draft_model or speculative_num_tokens or speculative_min_acceptance_rate:
            raise click.ClickException(
                f"speculative decoding ({', '.join(SPECULATIVE)}) is not supported; remove those options"
            )
        bring_up(models, context_size, checked)
    except click.ClickException as error:
        fail(error.message)
    except Exception as error:  # Compose shows an error line; a traceback on stderr it would not show
        fail(f"unexpected {type(error).__name__}: {error}")


def check_up(models: tuple[str, ...], context_size: int, runtime_flags: str, backend: str) -> list[str]:
    """The runtime flags as a list; a bad option is a ClickException naming it."""
    if not models:
        raise click.ClickException("options.model is required: name the model, e.g. model: ai/smollm2")
    if backend != BACKEND:
        raise click.ClickException(f"backend {backend!r} is not available; this runner has {BACKEND} only")
    if context_size == 0 or context_size < -1:
        raise click.ClickException(f"context-size must be a positive number of tokens (or -1), not {context_size}")
    for model in models:
        qualified(model)
    try:
        return shlex.split(runtime_flags)
    except ValueError as error:
        raise click.ClickException(f"runtime-flags cannot be read ({error}): {runtime_flags!r}") from None


def bring_up(models: tuple[str, ...], context_size: int, runtime_flags: list[str]) -> None:
    say("info", "Initializing model runner...")
    client = RunnerClient()
    client.ensure_running()
    url = container_url(client)  # before any download: a runner containers cannot reach is no use to them
    stored: list[ModelInfo] = client.get_json("/models")
    have = {tag for model in stored for tag in model.get("tags") or []}
    for model in models:
        if qualified(model) not in {qualified(tag) for tag in have}:
            pull(client, model)
    say("setenv", f"MODEL={','.join(models)}")
    if context_size > 0:
        say("info", f"Setting context size to {context_size}")
    if runtime_flags:
        say("info", f"Setting raw runtime flags to {shlex.join(runtime_flags)}")
    for model in models:
        body: dict[str, Any] = {"model": qualified(model)}
        if context_size > 0:
            body["context-size"] = context_size
        if runtime_flags:
            body["runtime-flags"] = runtime_flags
        client.request("POST", "/engines/_configure", json_body=body).close()
        say("info", f"Successfully configured backend for model {model}")
    say("setenv", f"URL={url}{ENGINES_PATH}")


def pull(client: RunnerClient, model: str) -> None:
    say("info", f"Pulling {model}")
    events: Iterator[ProgressLine] = client.stream_lines("POST", "/models/create", json_body={"from": model})
    last = ""
    for event in events:
        message = event.get("message", "")
        layer = event.get("layer")
        done = event.get("type") != "progress" or (layer is not None and layer["current"] == layer["size"])
        if message and message != last and done:
            say("info", message)
            last = message


def container_url(client: RunnerClient) -> str:
    """The runner's URL as containers reach it; a runner on loopback only is opened on the Docker bridge
    first (unless DOCKER_MODEL_BRIDGE=none forbids it), and said so."""
    version: VersionInfo = client.get_json("/version")
    url = version.get("container_url")
    listener: ListenerInfo | None
    if url:
        listener = next((item for item in version["listeners"] if item["url"] == url), None)
    else:
        try:
            listener = client.request("POST", "/engines/_bridge").json()
        except RunnerError as error:
            raise click.ClickException(f"containers cannot reach the runner: {error.message}") from None
        url = listener["url"]
        say("info", f"Opened the runner to containers at {url} (the Docker bridge)")
    if listener is not None:
        warn_about_token(listener)
    return url


def warn_about_token(listener: ListenerInfo) -> None:
    if listener["token"] == "all":
        say(
            "info",
            f"The runner at {listener['url']} needs its token for inference too: services must send it as their "
            "API key (`docker model status` shows it)",
        )


@compose.command()
@click.argument("service", required=False)
def down(service: str | None) -> None:
    """Nothing to tear down: models stay stored, and unload after their keep-alive."""
