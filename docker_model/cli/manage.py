"""Commands that change models and what is loaded: `rm`, `tag`, `unload`, `configure`."""

from __future__ import annotations

import sys

import click

from docker_model.cli.client import RunnerClient, model_path


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
            events = client.request("DELETE", model_path(model), params={"force": "true"} if force else None).json()
        except click.ClickException as error:
            click.echo(f"Error: {error.message}", err=True)
            failed = True
            continue
        for event in events:
            for kind, value in event.items():
                click.echo(f"{kind}: {familiar(value)}")
    if failed:
        sys.exit(1)


@click.command()
@click.argument("source")
@click.argument("target")
def tag(source: str, target: str) -> None:
    """Create a tag TARGET that refers to the model SOURCE."""
    repository, tag_name = split_target(target)
    result = RunnerClient().request("POST", model_path(source, "/tag"), params={"repo": repository, "tag": tag_name})
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


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--context-size", type=click.IntRange(min=1), help="Context size in tokens, per request")
@click.option("--keep-alive", help="How long the model stays loaded when idle: 5m, 1h, 0 (unload at once), -1 (never)")
@click.argument("model")
@click.argument("runtime_flags", nargs=-1, type=click.UNPROCESSED)
def configure(context_size: int | None, keep_alive: str | None, model: str, runtime_flags: tuple[str, ...]) -> None:
    """Configure a model's runtime settings: `configure [OPTIONS] MODEL [-- FLAGS...]`."""
    body: dict = {"model": model}
    if context_size is not None:
        body["context-size"] = context_size
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if runtime_flags:
        body["runtime-flags"] = list(runtime_flags)
    RunnerClient().request("POST", "/engines/_configure", json_body=body).close()
    click.echo(f"Configured {model}")
