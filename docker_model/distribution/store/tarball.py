"""The tar stream of Docker Model Runner's `POST /models/load`: `blobs/sha256/<hex>` files, then
`manifest.json`. Written by `docker model package` (without --push); read, with the OCI image layout that
`docker model save` writes, by `oci_layout.read_archive`, through `read_tar`'s checks."""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Callable
from typing import BinaryIO

from docker_model.distribution.artifact import Artifact
from docker_model.distribution.errors import DistributionError, UnsupportedFormatError

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


def read_tar(stream: BinaryIO, on_file: Callable[[str, tarfile.TarInfo, BinaryIO], None]) -> None:
    """Call `on_file(name, member, data)` for every file of a tar stream, its name normalised.

    The stream is read once, front to back, so it may be a network body; nothing is extracted by its name.
    Folders are skipped; links, devices and paths leading out are refused (UnsupportedFormatError), and so is
    a stream that is not a whole, uncompressed tar (DistributionError), even while `on_file` reads a file.
    """
    try:
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as archive:
            for member in archive:
                name = _member_name(member)
                if not member.isdir():
                    on_file(name, member, archive.extractfile(member))  # type: ignore[arg-type]
    except tarfile.TarError as exc:
        raise DistributionError(f"the model archive is not a readable, uncompressed tar stream: {exc}") from None


def write_model_tar(artifact: Artifact, sink: BinaryIO) -> None:
    """Write an artifact as `oci_layout.read_archive` reads it: config and layer blobs, then `manifest.json`
    last."""
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
