"""Commands that show what is there: `list`, `inspect`, `df` and `ps`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from docker_model.cli.client import RunnerClient, about_model, model_path
from docker_model.cli.render import table, time_ago, time_until
from docker_model.reference import display_name, is_model_id, parse_reference, short_id
from docker_model.units import human_bytes

if TYPE_CHECKING:  # the JSON shapes, for the type checker only: the CLI imports little at start-up
    from docker_model.api_types import ConfiguredModels, DiskUsage, ModelInfo, RunningModel


LIST_HEADERS = ("MODEL NAME", "PARAMETERS", "QUANTIZATION", "ARCHITECTURE", "MODEL ID", "CREATED", "CONTEXT", "SIZE")
NONE = "<none>"


def matches(model: ModelInfo, wanted: str) -> bool:
    """Whether a model answers to a `list MODEL` filter: an ID prefix, a tag, or a repository."""
    if is_model_id(wanted):
        return model["id"].removeprefix("sha256:").startswith(wanted.removeprefix("sha256:"))
    reference = parse_reference(wanted)
    explicit_tag = ":" in wanted.rsplit("/", 1)[-1] or "@" in wanted
    for tag in model["tags"]:
        candidate = parse_reference(tag)
        if explicit_tag and str(candidate) == str(reference):
            return True
        if not explicit_tag and (candidate.registry, candidate.repository) == (
            reference.registry,
            reference.repository,
        ):
            return True
    return False


def list_rows(models: list[ModelInfo], contexts: dict[str, int | None]) -> list[list[str]]:
    """Table rows; CONTEXT is the context each model runs with (`contexts`, by model ID)."""
    rows = []
    for model in models:
        config = model.get("config") or {}
        context = contexts.get(model["id"])
        for tag in model["tags"] or [NONE]:
            rows.append(
                [
                    NONE if tag == NONE else display_name(tag),
                    config.get("parameters", ""),
                    config.get("quantization", ""),
                    config.get("architecture", ""),
                    short_id(model["id"]),
                    time_ago(model["created"]),
                    str(context) if context else "",
                    config.get("size", ""),
                ]
            )
    return sorted(rows, key=lambda row: (row[0] == NONE, row[0]))


@click.command(name="list")
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the models as JSON")
@click.option("-q", "--quiet", is_flag=True, help="Only print model IDs")
@click.option("--openai", is_flag=True, help="Print the models in OpenAI's format")
def list_models(model: str | None, as_json: bool, quiet: bool, openai: bool) -> None:
    """List the models pulled to your local environment."""
    if sum((as_json, quiet, openai)) > 1:
        raise click.UsageError("--json, --quiet and --openai each choose the output: give only one")
    client = RunnerClient()
    if openai:
        click.echo(json.dumps(client.get_json("/engines/v1/models"), indent=2))
        return
    models: list[ModelInfo] = client.get_json("/models")
    if model:
        models = [entry for entry in models if matches(entry, model)]
    if as_json:
        click.echo(json.dumps(models, indent=2))
    elif quiet:
        click.echo("\n".join(dict.fromkeys(short_id(entry["id"]) for entry in models)))
    else:
        configured: ConfiguredModels = client.get_json("/engines/_configure")
        contexts = {entry["model"]: entry["context_size"] for entry in configured["models"]}
        click.echo(table(LIST_HEADERS, list_rows(models, contexts)))


@click.command()
@click.argument("model")
@click.option("--openai", is_flag=True, help="Show the model in OpenAI's format")
def inspect(model: str, openai: bool) -> None:
    """Display detailed information on one model."""
    client = RunnerClient()
    path = f"/engines/v1{model_path(model)}" if openai else model_path(model)
    with about_model(model):
        click.echo(json.dumps(client.get_json(path), indent=2))


@click.command()
def df() -> None:
    """Show the disk used by models and the inference engine."""
    usage: DiskUsage = RunnerClient().get_json("/engines/df")
    rows = [["Models", human_bytes(usage["models_disk_usage"])]]
    if usage["default_backend_disk_usage"]:  # as Docker Model Runner does: no engine, no row
        rows.append(["Inference engine", human_bytes(usage["default_backend_disk_usage"])])
    click.echo(table(("TYPE", "SIZE"), rows))


@click.command()
def ps() -> None:
    """List the models loaded in memory."""
    running: list[RunningModel] = RunnerClient().get_json("/engines/ps")
    rows = [
        [
            display_name(entry["model_name"]),
            entry["backend_name"],
            entry["mode"],
            time_until(entry["until"]),
            str(entry["context_size"]),
            str(entry["sequences"]),
            human_bytes(entry["memory_estimated"]),
            "-" if entry["memory_measured"] is None else human_bytes(entry["memory_measured"]),
        ]
        for entry in running
    ]
    headers = ("MODEL NAME", "BACKEND", "MODE", "UNTIL", "CONTEXT", "SEQUENCES", "MEMORY EST.", "MEMORY USED")
    click.echo(table(headers, rows))
