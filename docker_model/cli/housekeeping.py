"""Store housekeeping: `save` and `load` (a model as an OCI image layout tarball, to move it to a machine
with no network), `check [--repair]` (the store's integrity check) and `prune` (models gone unused)."""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from docker_model.cli.client import Reply, RunnerClient, about_model, model_path, unexpected_answer
from docker_model.cli.render import table, time_ago
from docker_model.reference import display_name, familiar_name, parse_reference
from docker_model.units import human_bytes, parse_age

if TYPE_CHECKING:
    from docker_model.api_types import CheckReport, ModelInfo, PruneResult

CHUNK_BYTES = 1 << 20
TAR = "application/x-tar"
CHECK_TIMEOUT_SECONDS = 24 * 3600.0  # the check hashes every blob before it answers: hours for a large store


@click.command()
@click.argument("model")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write: an OCI image layout tarball",
)
def save(model: str, output: Path) -> None:
    """Save a model to a file, to load it elsewhere with `docker model load`."""
    try:  # beside the file, renamed into place once whole: an interrupted save leaves no partial file
        fd, temporary = tempfile.mkstemp(dir=output.resolve().parent, prefix=f".{output.name}.", suffix=".tmp")
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as sink:
            with about_model(model):
                reply = RunnerClient().request("GET", model_path(model, "/export"), headers={"Accept": TAR})
            with reply:
                written = copy_export(reply, sink, model)
        os.replace(temporary, output)
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    click.echo(f"Model {model} saved to {output} ({human_bytes(written)})")


def copy_export(reply: Reply, sink: BinaryIO, model: str) -> int:
    """Copy the runner's export of `model` into `sink`; the bytes written. A failure to read is the runner's
    (said so, in one line), one to write is left to the caller; a missing Content-Length (a chunked answer, as
    Docker Model Runner's) means the size is not known in advance."""
    length = reply.response.getheader("Content-Length") or ""
    expected = int(length) if length.isdigit() else None
    written = 0
    while True:
        try:
            chunk = reply.response.read(CHUNK_BYTES)
        except (OSError, http.client.HTTPException) as error:
            stopped = "timed out" if isinstance(error, TimeoutError) else "connection lost"
            raise stopped_sending(model, written, expected, stopped) from None
        if not chunk:
            break
        sink.write(chunk)
        written += len(chunk)
    if expected is not None and written != expected:
        raise stopped_sending(model, written, expected, "connection closed")
    return written


def stopped_sending(model: str, written: int, expected: int | None, why: str) -> click.ClickException:
    of = f" of {human_bytes(expected)}" if expected is not None else ""
    return click.ClickException(
        f"the runner stopped sending {model} after {human_bytes(written)}{of} ({why}), nothing was saved: "
        "'docker model logs' says why; 'docker model check' finds a damaged store"
    )


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk


@click.command()
@click.option(
    "-i",
    "--input",
    "source",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The file to read: a tarball `docker model save` wrote (or Docker Model Runner's load format)",
)
@click.option("-t", "--tag", help="A name for the model, besides those the file gives it")
def load(source: Path, tag: str | None) -> None:
    """Load a model from a file `docker model save` wrote; no network is needed."""
    params = {"tag": str(parse_reference(tag))} if tag else None
    headers = {"Content-Type": TAR, "X-Model-Size": str(source.stat().st_size)}
    reply = RunnerClient().request("POST", "/models/load", params=params, headers=headers, data=file_chunks(source))
    model: ModelInfo = reply.json()
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        raise unexpected_answer(reply, f"not a model ({str(model)[:60]!r})")
    names = ", ".join(familiar_name(t) for t in model.get("tags") or [])
    if names:
        click.echo(f"Loaded model: {names}")
    else:
        short = model["id"].removeprefix("sha256:")[:12]
        click.echo(f"Loaded model {short}, untagged: name it with 'docker model tag {short} NAME'")


@click.command()
@click.option("--repair", is_flag=True, help="Fix what is found: remove damaged models and leftovers")
def check(repair: bool) -> None:
    """Verify every model file in the store, and find leftovers of interrupted work."""
    params = {"repair": "true"} if repair else None
    reply = RunnerClient().request("POST", "/models/_check", params=params, timeout=CHECK_TIMEOUT_SECONDS)
    report: CheckReport = reply.json()
    click.echo(
        f"Checked {report['models']} model(s): {report['blobs']} file(s), "
        f"{human_bytes(report['verified_bytes'])} verified"
    )
    if not report["problems"]:
        click.echo("No problems found")
        return
    click.echo("Repaired:" if report["repaired"] else "Problems found:")
    for problem in report["problems"]:
        click.echo(f"  {problem}")
    if not report["repaired"]:
        click.echo("Run 'docker model check --repair' to fix them", err=True)
        sys.exit(1)


@click.command()
@click.option(
    "--unused-for",
    default="30d",
    show_default=True,
    help="Remove models not used (loaded or pulled) for this long: 30m, 24h, 7d",
)
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation")
def prune(unused_for: str, force: bool) -> None:
    """Remove models not used for a while (models loaded now stay)."""
    try:
        parse_age(unused_for)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--unused-for") from None
    client = RunnerClient()
    found: PruneResult = client.request("POST", "/models/_prune", json_body={"unused_for": unused_for}).json()
    if not found["models"]:
        click.echo(f"No models unused for {unused_for}")
        click.echo("Total reclaimed space: 0B")
        return
    if not force:
        rows = [
            [
                ", ".join(display_name(t) for t in m["tags"]) or "<none>",
                time_ago(m["last_used"]),
                human_bytes(m["size"]),
            ]
            for m in found["models"]
        ]
        click.echo(f"WARNING! This will remove {len(rows)} model(s) not used for {unused_for}:", err=True)
        click.echo(table(["MODEL", "LAST USED", "SIZE"], rows), err=True)
        if not click.confirm("Are you sure you want to continue?", default=False, err=True):
            raise click.ClickException("nothing was removed (pass --force to prune without this question)")
    ids = [m["id"] for m in found["models"]]
    body = {"unused_for": unused_for, "models": ids}
    done: PruneResult = client.request("POST", "/models/_prune", json_body=body).json()
    if done["models"]:
        click.echo("Deleted Models:")
    for model in done["models"]:
        for tag in model["tags"]:
            click.echo(f"untagged: {familiar_name(tag)}")
        click.echo(f"deleted: {model['id']}")
    kept = len(ids) - len(done["models"])
    if kept:
        click.echo(f"{kept} model(s) were used meanwhile and stay")
    click.echo(f"\nTotal reclaimed space: {human_bytes(done['reclaimed'])}")
