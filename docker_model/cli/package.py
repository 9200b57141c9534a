"""`docker model package`: build a model artifact from a GGUF file, then load it into the store or push it.

The artifact is built here, in the CLI, as Docker's CLI does; without `--push` it streams to the runner
as a tar of blobs and manifest (`POST /models/load`), so the runner stays the only writer of the store.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from docker_model import settings
from docker_model.cli.client import RunnerClient
from docker_model.reference import parse_reference

if TYPE_CHECKING:
    from docker_model.distribution import Artifact

CHUNK_BYTES = 1 << 20


def tar_chunks(artifact: Artifact) -> Iterator[bytes]:
    """The artifact as a tar stream, written by a thread into a pipe and read back in chunks."""
    from docker_model.distribution import write_model_tar

    read_fd, write_fd = os.pipe()

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as sink:
            write_model_tar(artifact, sink)

    producer = threading.Thread(target=produce, name="package-tar", daemon=True)
    producer.start()
    with os.fdopen(read_fd, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            yield chunk
    producer.join()


EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.option("--gguf", type=EXISTING_FILE, required=True, help="The GGUF file (first shard if sharded)")
@click.option("--license", "licenses", type=EXISTING_FILE, multiple=True, help="A license file")
@click.option("--chat-template", type=EXISTING_FILE, help="A Jinja chat template")
@click.option("--mmproj", type=EXISTING_FILE, help="A multimodal projector")
@click.option("--context-size", type=click.IntRange(min=1), help="The context size the model runs with")
@click.option("--push", is_flag=True, help="Push to the registry instead of loading into the local store")
@click.argument("target")
def package(
    gguf: Path,
    licenses: tuple[Path, ...],
    chat_template: Path | None,
    mmproj: Path | None,
    context_size: int | None,
    push: bool,
    target: str,
) -> None:
    """Package a GGUF file into a model artifact named TARGET."""
    from docker_model import distribution

    reference = str(parse_reference(target))
    try:
        artifact = distribution.package(gguf, licenses, chat_template, mmproj, context_size)
    except (distribution.DistributionError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    if push:
        try:
            registry = distribution.RegistryClient(distribution.Store(settings.models_path()))
            registry.push_artifact(artifact, reference)
        except distribution.DistributionError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"Model pushed successfully to {reference}")
        return
    size = str(len(artifact.config_bytes) + sum(layer.size for layer in artifact.layers))
    RunnerClient().request(
        "POST", "/models/load", params={"tag": reference}, headers={"X-Model-Size": size}, data=tar_chunks(artifact)
    ).close()
    click.echo(f"Model packaged successfully as {reference}")
