"""Commands that show what is there: `list`, `inspect`, `df` and `ps`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from docker_model.cli.client import LOCAL_MODELS_HINT, RunnerClient, about_model, model_path
from docker_model.cli.render import table, time_ago, time_until
from docker_model.reference import display_name, is_model_id, parse_reference, short_id
from docker_model.units import human_bytes

if TYPE_CHECKING:  # the JSON shapes, for the type checker only: the CLI imports little at start-up
    from docker_model.api_types import ConfiguredModels, DiskUsage, ModelInfo, OpenAIModel, RunningModel

Entry = TypeVar("Entry", "ModelInfo", "OpenAIModel")

# Docker Model Runner's columns, then this runner's CAPABILITIES (last, so DMR's keep their places).
LIST_HEADERS = (
    "MODEL NAME",
    "PARAMETERS",
    "QUANTIZATION",
    "ARCHITECTURE",
    "MODEL ID",
    "CREATED",
    "CONTEXT",
    "SIZE",
    "CAPABILITIES",
)
NONE = "<none>"
REMOTE_HINT = "its registry has no such model: check the name and the tag"


def matches(model_id: str, names: list[str], wanted: str) -> bool:
    """Whether a model answers to a `list MODEL` filter: an ID prefix, a tag, or a repository."""
    if is_model_id(wanted):
        return model_id.removeprefix("sha256:").startswith(wanted.removeprefix("sha256:"))
    reference = parse_reference(wanted)
    explicit_tag = ":" in wanted.rsplit("/", 1)[-1] or "@" in wanted
    for tag in names:
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
                    ", ".join(model.get("capabilities") or ()),
                ]
            )
    return sorted(rows, key=lambda row: (row[0] == NONE, row[0]))


def wanted_capabilities(values: tuple[str, ...]) -> set[str]:
    """What `--capability` asks for: each value one capability or a comma-separated list (all must hold)."""
    from typing import get_args

    from docker_model.api_types import Capability

    known = get_args(Capability)
    wanted = {part.strip().lower() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(known)) or (["''"] if values and not wanted else [])
    if unknown:
        raise click.BadParameter(
            f"unknown capability {', '.join(unknown)}: choose from {', '.join(known)}", param_hint="'--capability'"
        )
    return wanted


def with_capabilities(
    entries: list[Entry], wanted: set[str], capabilities: Callable[[Entry], Any], where: str
) -> list[Entry]:
    """The entries that can do all of `wanted`; an error when `where` does not say what its models can do."""
    if not wanted:
        return entries
    kept = []
    for entry in entries:
        found = capabilities(entry)
        if not isinstance(found, list):
            raise click.ClickException(
                f"{where} does not say what its models can do (Docker Model Runner does not): "
                "list them without --capability"
            )
        if wanted <= set(found):
            kept.append(entry)
    return kept


def openai_capabilities(entry: OpenAIModel) -> Any:
    return (entry.get("dmr") or {}).get("capabilities")


def endpoint_id_matches(model_id: str, wanted: str) -> bool:
    """Docker Model Runner's filter for any endpoint's models, whose names need not be references: the
    whole name when `wanted` has a tag, else the name before its tag."""
    return model_id == wanted if ":" in wanted else model_id.split(":", 1)[0] == wanted


def list_endpoint(url: str, model: str | None, wanted: set[str], as_json: bool) -> None:
    """`list --openaiurl`: the models of any OpenAI-compatible endpoint, as a table or as its JSON list."""
    from docker_model.cli.endpoint import endpoint_models

    models = [entry for entry in endpoint_models(url) if not model or endpoint_id_matches(entry["id"], model)]
    models = with_capabilities(models, wanted, openai_capabilities, url)
    if as_json:
        click.echo(json.dumps({"object": "list", "data": models}, indent=2))
        return
    rows = [
        [entry["id"], time_ago(entry["created"]) if isinstance(entry.get("created"), int) else ""]
        for entry in sorted(models, key=lambda entry: entry["id"].lower())
    ]
    click.echo(table(("MODEL NAME", "CREATED"), rows))


@click.command(name="list")
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the models as JSON")
@click.option("-q", "--quiet", is_flag=True, help="Only print model IDs")
@click.option("--openai", is_flag=True, help="Print the models in OpenAI's format")
@click.option("--openaiurl", metavar="URL", help="List the models of any OpenAI-compatible endpoint instead")
@click.option(
    "--capability",
    "capabilities",
    multiple=True,
    metavar="NAME",
    help="Only models that can do this: chat, embeddings, tools, vision or reasoning (repeat it, or separate "
    "names with commas: a model must do them all)",
)
def list_models(
    model: str | None, as_json: bool, quiet: bool, openai: bool, openaiurl: str | None, capabilities: tuple[str, ...]
) -> None:
    """List the models pulled to your local environment."""
    if sum((as_json, quiet, openai)) > 1:
        raise click.UsageError("--json, --quiet and --openai each choose the output: give only one")
    wanted = wanted_capabilities(capabilities)
    if openaiurl is not None:
        if quiet:
            raise click.UsageError("--quiet cannot be used with --openaiurl: an endpoint's models have no IDs here")
        from docker_model.cli.endpoint import endpoint_url

        list_endpoint(endpoint_url(openaiurl), model, wanted, as_json or openai)
        return
    client = RunnerClient()
    if openai:
        listing = client.get_json("/engines/v1/models")
        data: list[OpenAIModel] = listing["data"]
        if model:
            data = [entry for entry in data if matches(entry["id"], [entry["id"]], model)]
        listing["data"] = with_capabilities(data, wanted, openai_capabilities, f"the runner at {client.base_url}")
        click.echo(json.dumps(listing, indent=2))
        return
    models: list[ModelInfo] = client.get_json("/models")
    if model:
        models = [entry for entry in models if matches(entry["id"], entry["tags"], model)]
    models = with_capabilities(
        models, wanted, lambda entry: entry.get("capabilities"), f"the runner at {client.base_url}"
    )
    if as_json:
        click.echo(json.dumps(models, indent=2))
    elif quiet:
        click.echo("\n".join(dict.fromkeys(short_id(entry["id"]) for entry in models)))
    else:
        configured: ConfiguredModels = client.get_json("/engines/_configure")
        contexts = {entry["ModelID"]: entry["context_size"] for entry in configured}
        click.echo(table(LIST_HEADERS, list_rows(models, contexts)))


@click.command()
@click.argument("model")
@click.option("--openai", is_flag=True, help="Show the model in OpenAI's format")
@click.option("-r", "--remote", is_flag=True, help="Show the model as its registry holds it, without pulling it")
def inspect(model: str, openai: bool, remote: bool) -> None:
    """Display detailed information on one model."""
    if openai and remote:
        raise click.UsageError("--remote cannot be used with --openai: a model in a registry has no OpenAI form")
    client = RunnerClient()
    path = f"/engines/v1{model_path(model)}" if openai else model_path(model)
    params = {"remote": "true"} if remote else None
    with about_model(model, REMOTE_HINT if remote else LOCAL_MODELS_HINT):
        click.echo(json.dumps(client.get_json(path, params=params), indent=2))


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
            "Loading..." if entry.get("loading") else time_until(entry["until"]),
            "-" if entry["context_size"] is None else str(entry["context_size"]),
            "-" if entry["sequences"] is None else str(entry["sequences"]),
            "-" if entry["memory_estimated"] is None else human_bytes(entry["memory_estimated"]),
            "-" if entry["memory_measured"] is None else human_bytes(entry["memory_measured"]),
        ]
        for entry in running
    ]
    headers = ("MODEL NAME", "BACKEND", "MODE", "UNTIL", "CONTEXT", "SEQUENCES", "MEMORY EST.", "MEMORY USED")
    click.echo(table(headers, rows))
    shares = [(entry["model_name"], share) for entry in running for share in entry.get("rpc") or []]
    if shares:
        rpc_rows = [
            [
                display_name(name),
                share["endpoint"],
                f"{share['fraction']:.0%}",
                human_bytes(share["offer"]),
                human_bytes(share["estimated"]),
                "-" if share["measured"] is None else human_bytes(share["measured"]),
            ]
            for name, share in shares
        ]
        click.echo("\n" + table(("MODEL NAME", "RPC SERVER", "SHARE", "OFFER", "HOLDS EST.", "HOLDS"), rpc_rows))
