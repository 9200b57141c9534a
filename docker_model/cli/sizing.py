"""Commands that say how models fit in memory: `show MODEL` and `configure show [MODEL]`."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

import click

from docker_model.cli.client import RunnerClient, about_model, qualified
from docker_model.cli.render import table
from docker_model.reference import display_name
from docker_model.units import human_bytes

if TYPE_CHECKING:  # the JSON shapes, for the type checker only
    from docker_model.api_types import ConfiguredModels, FitReport, PoolInfo

CONFIGURE_SHOW_HEADERS = (
    "MODEL NAME", "CONTEXT SET", "CONTEXT", "SEQUENCES", "KEEP ALIVE", "RUNTIME FLAGS", "RPC SERVERS", "WHY"
)  # fmt: skip


@click.command()
@click.argument("model")
@click.option("--context-size", type=click.IntRange(min=1), help="Ask how the model fits with this context instead")
def show(model: str, context_size: int | None) -> None:
    """Show a model's facts and how it fits in the memory the runner may use."""
    query = {"model": qualified(model), **({"context_size": context_size} if context_size else {})}
    with about_model(model):
        report: FitReport = RunnerClient().get_json(f"/engines/_fit?{urlencode(query)}")
    rows = fit_rows(report)
    width = max(len(key) for key, _ in rows)
    click.echo("\n".join(f"{key:<{width}}   {value}" for key, value in rows))


def fit_rows(report: FitReport) -> list[tuple[str, str]]:
    """The lines of `show`: the model's facts, then its fit."""
    contexts = [
        f"{what} {value}"
        for what, value in (
            ("trained", report["trained_context"]),
            ("packaged", report["packaged_context"]),
            ("configured", report["configured_context"]),
        )
        if value
    ]
    rows = [
        ("Model", display_name(report["name"])),
        ("ID", report["model"]),
        ("Architecture", report["architecture"]),
        ("Parameters", report["parameters"]),
        ("Quantization", report["quantization"]),
        ("Size", report["size"]),
        ("Context", ", ".join(contexts) or "-"),
    ]
    room = "unknown" if report["room"] is None else human_bytes(report["room"])
    memory = report["memory"]
    if not report["fits"] or memory is None:
        return [*rows, ("Fits", "no"), ("Why", report["reason"]), ("Memory free", room)]
    parts = (
        f"{human_bytes(memory['total'])}: weights {human_bytes(memory['weights'])}, KV cache "
        f"{human_bytes(memory['kv_cache'])}, compute {human_bytes(memory['compute'])}, "
        f"process {human_bytes(memory['overhead'])}"
    )
    loads = f"{report['context_size']} tokens × {report['sequences']} sequences ({report['reason']})"
    return [*rows, ("Fits", "yes"), ("Loads with", loads), ("Memory", parts), ("Memory free", room)]


def pool_text(pool: PoolInfo | None, configured: str | None) -> str:
    """`a:50052,b:50052 split 1,3 (set with configure)`; `-` without a pool, or that `configure --rpc none` said so."""
    if not pool:
        return "none (set with configure)" if configured == "none" else "-"
    split = pool["tensor_split"]
    shares = f" split {','.join(f'{share:g}' for share in split)}" if split else ""
    return f"{','.join(pool['endpoints'])}{shares} ({pool['source']})"


def configure_show(model: str | None) -> None:
    """What each model (or `model`) is configured with, what is in effect, and why."""
    path = "/engines/_configure" + (f"?{urlencode({'model': qualified(model)})}" if model else "")
    with about_model(model or ""):
        configured: ConfiguredModels = RunnerClient().get_json(path)
    rows = []
    for entry in configured:
        settings = entry["Config"]
        keep_alive = entry["keep_alive"]
        rows.append(
            [
                display_name(entry["Model"]),
                str(settings.get("context-size", "-")),
                str(entry["context_size"] or "-"),
                str(entry["sequences"] or "-"),
                "never" if keep_alive < 0 else f"{keep_alive:g}s",
                " ".join(settings.get("runtime-flags", [])) or "-",
                pool_text(entry.get("rpc"), settings.get("rpc")),
                entry["reason"],
            ]
        )
    click.echo(table(CONFIGURE_SHOW_HEADERS, rows))
