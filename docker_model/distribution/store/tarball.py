"""The tar stream of Docker Model Runner's `POST /models/load`: `blobs/sha256/<hex>` files, then
`manifest.json`. Written by `docker model package` (without --push), read by the store."""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from typing import BinaryIO

from docker_model.distribution.artifact import Artifact
from docker_model.distribution.errors import DistributionError
from docker_model.distribution.store.blobs import BlobStore

_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")
MANIFEST_NAME = "manifest.json"


def read_model_tar(blobs: BlobStore, stream: BinaryIO) -> bytes:
    """Store every `blobs/sha256/<hex>` entry (verified against its name); return the raw manifest.

    The stream is read once, front to back, so it may be a network body. Other entries are skipped.
    """
    manifest: bytes | None = None
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name = posixpath.normpath(member.name.lstrip("./") or ".")
                if name == MANIFEST_NAME:
                    manifest = archive.extractfile(member).read()  # type: ignore[union-attr]
                elif match := _BLOB.fullmatch(name):
                    blobs.write_stream(f"sha256:{match[1]}", archive.extractfile(member))  # type: ignore[arg-type]
    except tarfile.TarError as exc:
        raise DistributionError(f"the model archive is not a readable tar stream: {exc}") from None
    if manifest is None:
        raise DistributionError(f"the model archive has no {MANIFEST_NAME}: it must end with the model's manifest")
    return manifest


def write_model_tar(artifact: Artifact, sink: BinaryIO) -> None:
    """Write an artifact as `read_model_tar` reads it: config and layer blobs, then `manifest.json` last."""
    with tarfile.open(fileobj=sink, mode="w|") as archive:
        _add_bytes(archive, f"blobs/sha256/{artifact.config_digest.removeprefix('sha256:')}", artifact.config_bytes)
        for layer in artifact.layers:
            if layer.source is None:
                raise DistributionError(f"layer {layer.digest} has no local file to write")
            info = tarfile.TarInfo(f"blobs/sha256/{layer.digest.removeprefix('sha256:')}")
            info.size = layer.size
            with open(layer.source, "rb") as source:
                archive.addfile(info, source)
        _add_bytes(archive, MANIFEST_NAME, artifact.manifest_bytes)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))
