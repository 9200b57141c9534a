"""`docker model requests [--model M] [-f] [--include-existing]`: the runner's recent inference requests and
their answers, as Docker Model Runner prints them: its JSON as it comes, or with `--follow` one JSON line per
request as it is answered."""

from __future__ import annotations

import http.client
import sys

import click

from docker_model.cli.client import RunnerClient, about_model, model_path, qualified

ROUTE = "/engines/requests"
FOLLOWED_EVENTS = ("new_request", "existing_request")


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing requests as they are answered")
@click.option("--include-existing", is_flag=True, help="With --follow, first print the requests kept already")
@click.option("--model", help="Only the requests to this model")
def requests(follow: bool, include_existing: bool, model: str | None) -> None:
    """Show the recent requests to the runner's models and their responses."""
    if include_existing and not follow:
        raise click.UsageError("--include-existing only applies with --follow: add --follow, or drop it")
    params = {"model": qualified(model)} if model else {}
    client = RunnerClient()
    if model:  # the runner answers [] for a model it does not store, as Docker Model Runner's does
        with about_model(model):
            client.request("GET", model_path(model)).close()
    if not follow:
        reply = client.request("GET", ROUTE, params=params)
        sys.stdout.write(reply.text().rstrip("\n") + "\n")
        return
    if include_existing:
        params["include_existing"] = "true"
    reply = client.request("GET", ROUTE, params=params, headers={"Accept": "text/event-stream"})
    click.echo("Following the runner's requests; press Ctrl+C to stop.", err=True)
    event = ""
    try:
        with reply:
            for raw in reply.iter_lines():
                line = raw.decode("utf-8", errors="replace")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in FOLLOWED_EVENTS:
                    sys.stdout.write(line[5:].strip() + "\n")
                    sys.stdout.flush()
    except KeyboardInterrupt:
        return
    except (OSError, http.client.HTTPException):
        pass  # the runner went away: said below, as a stream it ended
    click.echo("The runner closed the stream.", err=True)
