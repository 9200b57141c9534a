"""Commands that change models and what is loaded: `rm`, `purge`, `tag`, `unload`, `configure`."""

from __future__ import annotations

import sys

import click

from docker_model.cli.client import Reply, RunnerClient, about_model, model_path, unexpected_answer
from docker_model.units import human_bytes


def familiar(name: str) -> str:
    """A tag as users write it: Docker Hub's registry name left out."""
    return name.removeprefix("docker.io/")


def split_target(target: str) -> tuple[str, str]:
    """`localhost:5000/ai/x:v1` -> (`localhost:5000/ai/x`, `v1`); the tag defaults to `latest`."""
    repository, _, tag = target.rpartition(":")
    if not repository or "/" in tag:
        return target, "latest"
    return repository, tag


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
                click.echo(f"{kind}: {familiar(value)}")
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
    models = client.get_json("/models")
    if not models:
        click.echo("No models to remove")
        return
    size = human_bytes(client.get_json("/engines/df")["models_disk_usage"])
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
    repository, tag_name = split_target(target)
    with about_model(source):
        result = RunnerClient().request(
            "POST", model_path(source, "/tag"), params={"repo": repository, "tag": tag_name}
        )
    click.echo(f"Model {source} tagged successfully with {familiar(result.json()['target'])}")


@click.command()
@click.argument("models", nargs=-1)
@click.option("--all", "unload_all", is_flag=True, help="Unload every model")
def unload(models: tuple[str, ...], unload_all: bool) -> None:
    """Unload models from memory."""
    if not models and not unload_all:
        raise click.UsageError("name the models to unload, or pass --all")
    body = {"all": True} if unload_all else {"models": list(models)}
    result = RunnerClient().request("POST", "/engines/unload", json_body=body).json()
    click.echo(f"Unloaded {result['unloaded_runners']} model(s)")


def flags_separator_given() -> bool:
    """Whether `--` follows `configure` on the command line (click consumes it before the command sees it)."""
    args = sys.argv[sys.argv.index("configure") + 1 :] if "configure" in sys.argv else []
    return "--" in args


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--context-size", type=click.IntRange(min=1), help="Context size in tokens, per request")
@click.option("--keep-alive", help="How long the model stays loaded when idle: 5m, 1h, 0 (unload at once), -1 (never)")
@click.argument("model")
@click.argument("runtime_flags", nargs=-1, type=click.UNPROCESSED)
def configure(context_size: int | None, keep_alive: str | None, model: str, runtime_flags: tuple[str, ...]) -> None:
    """Configure a model's runtime settings.

    \b
    Runtime flags for the engine follow `--`; `--` alone clears them:
      docker model configure --context-size 8192 ai/smollm2 -- --temp 0.2
    """
    body: dict = {"model": model}
    if context_size is not None:
        body["context-size"] = context_size
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if runtime_flags or flags_separator_given():
        body["runtime-flags"] = list(runtime_flags)  # `MODEL --` alone clears them
    RunnerClient().request("POST", "/engines/_configure", json_body=body).close()
    click.echo(f"Configured {model}")
