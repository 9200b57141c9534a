"""The tar stream of Docker Model Runner's `POST /models/load`: `blobs/sha256/<hex>` files, then
`manifest.json`. Written by `docker model package` (without --push), read by the store."""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from typing import BinaryIO

from docker_model.distribution.artifact import MAX_MANIFEST_BYTES, Artifact, check_size
from docker_model.distribution.errors import DistributionError, UnsupportedFormatError
from docker_model.distribution.store.blobs import BlobStore

_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")
MANIFEST_NAME = "manifest.json"
# tarfile reads a long name's or a pax header's data into memory whole: a few hundred bytes in any archive
# `write_model_tar` (or Docker's) writes, so a megabyte is plenty.
MAX_TAR_HEADER_BYTES = 1 << 20
_IN_MEMORY_HEADERS = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a device",
    tarfile.BLKTYPE: "a device",
    tarfile.FIFOTYPE: "a FIFO",
}


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses a header whose data tarfile would read into memory when it passes MAX_TAR_HEADER_BYTES."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _BoundedTarInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _IN_MEMORY_HEADERS and info.size > MAX_TAR_HEADER_BYTES:
            limit = f"{MAX_TAR_HEADER_BYTES >> 20} MiB"
            raise UnsupportedFormatError(f"the model archive has a {info.size}-byte header, over the {limit} limit")
        return info


def _member_name(member: tarfile.TarInfo) -> str:
    """The member's path inside the archive; one that leads out of it, or is not a file or folder, is refused."""
    name = posixpath.normpath(member.name)
    if name.startswith("/") or name == ".." or name.startswith("../"):
        raise UnsupportedFormatError(f"the model archive has a member outside it: {member.name!r}")
    if not (member.isdir() or member.type in (tarfile.REGTYPE, tarfile.AREGTYPE)):
        kind = _KINDS.get(member.type, "not a plain file")
        raise UnsupportedFormatError(f"the model archive member {member.name!r} is {kind}")
    return name


def read_model_tar(blobs: BlobStore, stream: BinaryIO) -> bytes:
    """Store every `blobs/sha256/<hex>` entry (verified against its name); return the raw manifest.

    The stream is read once, front to back, so it may be a network body; nothing is extracted by its name.
    Other files and folders are skipped; links, devices and paths leading out are refused.
    """
    manifest: bytes | None = None
    try:
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as archive:
            for member in archive:
                name = _member_name(member)
                if member.isdir():
                    continue
                if name == MANIFEST_NAME:
                    check_size(f"the model archive's {MANIFEST_NAME}", member.size, MAX_MANIFEST_BYTES)
                    manifest = archive.extractfile(member).read()  # type: ignore[union-attr]
                elif match := _BLOB.fullmatch(name):
                    blobs.write_stream(f"sha256:{match[1]}", archive.extractfile(member))  # type: ignore[arg-type]
    except tarfile.TarError as exc:
        raise DistributionError(f"the model archive is not a readable, uncompressed tar stream: {exc}") from None
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
