"""`docker model search [TERM]`: models on Docker Hub (`ai/`) and Hugging Face (GGUF), as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import click

from docker_model import settings

if TYPE_CHECKING:
    import requests

    from docker_model.distribution.search import SearchResult

    Search = Callable[[requests.Session, str, str, int], list[SearchResult]]

SOURCES = {  # Docker Model Runner's spellings of --source
    "all": ("dockerhub", "huggingface"),
    "dockerhub": ("dockerhub",),
    "docker": ("dockerhub",),
    "hub": ("dockerhub",),
    "huggingface": ("huggingface",),
    "hf": ("huggingface",),
}


def count(n: int) -> str:
    """Downloads and stars as Docker Model Runner shows them: 999, 45.6K, 1.2M."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1_000:
        return f"{n / 1_000:.1f}K"
    return str(n)


@click.command()
@click.argument("term", required=False, default="")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=32, show_default=True, help="Most results to show")
@click.option(
    "--source",
    type=click.Choice(list(SOURCES)),
    default="all",
    show_default=True,
    help="Where to search: all, dockerhub (docker, hub) or huggingface (hf)",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON")
def search(term: str, limit: int, source: str, as_json: bool) -> None:
    """Search for models on Docker Hub (the ai/ namespace) and Hugging Face (GGUF repositories).

    Without TERM, lists the most popular ones. Docker Hub's models come first, then Hugging Face's, each
    by downloads; pull a Hugging Face one as hf.co/NAME.
    """
    import requests

    from docker_model.cli.render import safe_for_terminal, table
    from docker_model.distribution import search as sources

    searches = {
        "dockerhub": (sources.DOCKER_HUB, sources.search_docker_hub, settings.docker_hub_url()),
        "huggingface": (sources.HUGGING_FACE, sources.search_hugging_face, settings.huggingface_url()),
    }
    wanted = [searches[key] for key in SOURCES[source]]

    def searched(run: Search, url: str) -> list[sources.SearchResult]:
        with requests.Session() as session:  # one each: a session is not for two threads at once
            return run(session, url, term, limit)

    with ThreadPoolExecutor(len(wanted)) as pool:
        futures = [(name, pool.submit(searched, run, url)) for name, run, url in wanted]
        results, failures = [], []
        for name, future in futures:
            try:
                results.extend(future.result())
            except sources.SearchError as error:  # its text may hold the server's (a status line's reason)
                failures.append(f"{name}: {safe_for_terminal(str(error))}")
    if failures and not results:
        raise click.ClickException(f"search failed: {'; '.join(failures)}")
    for failure in failures:
        click.echo(f"Warning: failed to search {failure}", err=True)
    results.sort(key=lambda r: (r.source != sources.DOCKER_HUB, -r.downloads))
    results = results[:limit]
    if as_json:
        click.echo(json.dumps([result.as_json() for result in results], indent=4))
        return
    if not results:
        click.echo(f'No models found matching "{term}"' if term else "No models found")
        return
    rows = [
        [
            f"hf.co/{r.name}" if r.source == sources.HUGGING_FACE else r.name,
            r.description,
            count(r.downloads),
            count(r.stars),
            r.source,
        ]
        for r in results
    ]
    click.echo(table(("NAME", "DESCRIPTION", "DOWNLOADS", "STARS", "SOURCE"), rows))
