"""Read the tar stream of Docker Model Runner's `POST /models/load`: blobs then `manifest.json`."""

from __future__ import annotations

import posixpath
import re
import tarfile
from typing import BinaryIO

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
