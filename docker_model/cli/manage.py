"""Commands that change models and what is loaded: `rm`, `purge`, `tag`, `unload`, `configure`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from docker_model.cli.client import Reply, RunnerClient, about_model, model_path, unexpected_answer
from docker_model.reference import DEFAULT_TAG, familiar_name, parse_reference
from docker_model.units import human_bytes

if TYPE_CHECKING:  # the JSON shapes, for the type checker only: the CLI imports little at start-up
    from docker_model.api_types import DiskUsage, ModelInfo, TagResult, UnloadResult


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Remove a model by ID even when it has several tags")
def rm(models: tuple[str, ...], force: bool) -> None:
    """Remove local models."""
    client = RunnerClient()
    failed = False
    for model in models:
        try:
            with about_model(model):
                reply = client.request("DELETE", model_path(model), params={"force": "true"} if force else None)
            for kind, value in removal_events(reply):
                click.echo(f"{kind}: {familiar_name(value)}")
        except click.ClickException as error:
            click.echo(f"Error: {error.message}", err=True)
            failed = True
    if failed:
        sys.exit(1)


def removal_events(reply: Reply) -> list[tuple[str, str]]:
    """`[{"Untagged": tag}, {"Deleted": id}]` as pairs; anything else is an unexpected answer."""
    events = reply.json()

    def is_removal(event: object) -> bool:
        return isinstance(event, dict) and len(event) == 1 and all(isinstance(v, str) for v in event.values())

    if not isinstance(events, list) or not events or not all(is_removal(event) for event in events):
        raise unexpected_answer(reply, f"not a list of removals ({str(events)[:60]!r})")
    return [next(iter(event.items())) for event in events]


@click.command()
@click.option("-f", "--force", is_flag=True, help="Purge without asking for confirmation")
def purge(force: bool) -> None:
    """Remove every model from the local store (files that are not the store's stay)."""
    client = RunnerClient()
    models: list[ModelInfo] = client.get_json("/models")
    if not models:
        click.echo("No models to remove")
        return
    usage: DiskUsage = client.get_json("/engines/df")
    size = human_bytes(usage["models_disk_usage"])
    question = f"This removes all {len(models)} model(s) from the store, freeing {size}. Continue?"
    if not force and not click.confirm(question, default=False, err=True):
        raise click.ClickException("nothing was removed (pass --force to purge without this question)")
    client.request("DELETE", "/models/purge", params={"force": "true"}).close()
    click.echo(f"Removed {len(models)} model(s), {size}")


@click.command()
@click.argument("source")
@click.argument("target")
def tag(source: str, target: str) -> None:
    """Create a tag TARGET that refers to the model SOURCE."""
    reference = parse_reference(target)  # checked here, before the runner is asked
    if reference.digest is not None:
        raise click.UsageError(f"a tag cannot contain a digest: {target}")
    params = {"repo": reference.name, "tag": reference.tag or DEFAULT_TAG}
    with about_model(source):
        result = RunnerClient().request("POST", model_path(source, "/tag"), params=params)
    tagged: TagResult = result.json()
    click.echo(f"Model {source} tagged successfully with {familiar_name(tagged['target'])}")


@click.command()
@click.argument("models", nargs=-1)
@click.option("--all", "unload_all", is_flag=True, help="Unload every model")
@click.option("--backend", help="Only models on this backend (llama.cpp, the one this runner has)")
def unload(models: tuple[str, ...], unload_all: bool, backend: str | None) -> None:
    """Unload models from memory."""
    if not models and not unload_all:
        raise click.UsageError("name the models to unload, or pass --all")
    if models and unload_all:
        raise click.UsageError("--all unloads every model: leave out the model names, or drop --all")
    body: dict = {"all": True} if unload_all else {"models": list(models)}
    if backend is not None:
        body["backend"] = backend
    result: UnloadResult = RunnerClient().request("POST", "/engines/unload", json_body=body).json()
    click.echo(f"Unloaded {result['unloaded_runners']} model(s)")


def flags_separator_given() -> bool:
    """Whether `--` follows `configure` on the command line (click consumes it before the command sees it)."""
    args = sys.argv[sys.argv.index("configure") + 1 :] if "configure" in sys.argv else []
    return "--" in args


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--context-size", type=click.IntRange(min=1), help="Context size in tokens, per request")
@click.option("--keep-alive", help="How long the model stays loaded when idle: 5m, 1h, 0 (unload at once), -1 (never)")
@click.option(
    "--rpc",
    metavar="HOST:PORT[@SIZE][,...]",
    help="RPC servers (docker model rpc-server) that hold the model's layers, @SIZE capping each; "
    "none: this machine only, even with a runner-wide pool; default: forget this setting",
)
@click.argument("model")
@click.argument("runtime_flags", nargs=-1, type=click.UNPROCESSED)
def configure(
    context_size: int | None, keep_alive: str | None, rpc: str | None, model: str, runtime_flags: tuple[str, ...]
) -> None:
    """Configure a model's runtime settings.

    \b
    Runtime flags for the engine follow `--`; `--` alone clears them:
      docker model configure --context-size 8192 ai/smollm2 -- --temp 0.2
    `configure show [MODEL]` shows what is configured, what is in effect and why
    (a model named show is `ai/show` here).
    """
    if model == "show" and context_size is None and keep_alive is None and rpc is None and not flags_separator_given():
        if len(runtime_flags) > 1:
            raise click.UsageError("configure show takes one model at most")
        from docker_model.cli.sizing import configure_show

        configure_show(runtime_flags[0] if runtime_flags else None)
        return
    body: dict = {"model": model}
    if context_size is not None:
        body["context-size"] = context_size
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if rpc is not None:
        body["rpc"] = rpc
    if runtime_flags or flags_separator_given():
        body["runtime-flags"] = list(runtime_flags)  # `MODEL --` alone clears them
    RunnerClient().request("POST", "/engines/_configure", json_body=body).close()
    click.echo(f"Configured {model}")
