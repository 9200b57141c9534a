"""Model archives: the OCI image layout tarball `docker model save` writes, and the archives `load` reads.

A saved model is an OCI image layout (`oci-layout`, `index.json` naming the model in full in
`org.opencontainers.image.ref.name`, `blobs/sha256/` holding its manifest, config and layers) that also
ends with `manifest.json`, a copy of the manifest: Docker Model Runner's `POST /models/load` reads that
file and the blobs and skips the rest, so either tool loads what the other saved.

Reading takes either form (an OCI layout, or DMR's blobs and `manifest.json`) from a stream, front to
back: each blob goes to the store as it arrives, verified against its name (never held in memory), and
the blobs stored for an archive that is then refused are removed by the caller (`Store.load`), which pins
each blob the archive holds (`Store.pinned`) until the model is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from docker_model.distribution.artifact import (
    DOCKER_MANIFEST_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES,
    canonical_json,
    check_size,
    parse_manifest,
    sha256_digest,
)
from docker_model.distribution.errors import (
    ArchiveDigestError,
    DigestMismatchError,
    DistributionError,
    StoreCorruptError,
    UnsupportedFormatError,
)
from docker_model.distribution.model import Model
from docker_model.distribution.store.blobs import BlobStore
from docker_model.distribution.store.manifests import read_small
from docker_model.distribution.store.tarball import MANIFEST_NAME, read_tar
from docker_model.reference import InvalidReferenceError, parse_reference

LAYOUT_NAME = "oci-layout"
INDEX_NAME = "index.json"
LAYOUT_VERSION = "1.0.0"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"  # what `docker save` names an image with, ref.name holding its tag
TAR_MEDIA_TYPE = "application/x-tar"
_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_BLOCK = 512
_CHUNK = 1 << 20


# Writing


@dataclass(frozen=True)
class _Member:
    name: str
    data: bytes = b""
    blob: tuple[str, int] | None = None  # (digest, size) of a store blob
    folder: bool = False

    @property
    def size(self) -> int:
        return self.blob[1] if self.blob else len(self.data)

    def header(self, mtime: int) -> bytes:
        info = tarfile.TarInfo(self.name)
        info.type = tarfile.DIRTYPE if self.folder else tarfile.REGTYPE
        info.mode = 0o755 if self.folder else 0o644
        info.size = self.size
        info.mtime = mtime
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


@dataclass(frozen=True)
class Export:
    """A model as an OCI layout tarball: `size` bytes, made by `chunks()` as they are sent."""

    blobs: BlobStore
    members: list[_Member]
    mtime: int
    size: int = field(init=False)

    def __post_init__(self) -> None:
        total = sum(len(m.header(self.mtime)) + m.size + len(_padding(m.size)) for m in self.members)
        object.__setattr__(self, "size", total + 2 * _BLOCK)

    def chunks(self) -> Iterator[bytes]:
        """The tar stream. A blob that changed since it was stored (its digest no longer matches) stops it
        with StoreCorruptError before the end, so that what was sent is never a whole archive."""
        for member in self.members:
            yield member.header(self.mtime)
            if member.blob is None:
                yield member.data
            else:
                yield from self._blob_chunks(*member.blob)
            yield _padding(member.size)
        yield b"\0" * (2 * _BLOCK)

    def _blob_chunks(self, digest: str, size: int) -> Iterator[bytes]:
        path = self.blobs.path(digest)
        hasher = hashlib.sha256()
        sent = 0
        with open(path, "rb") as source:
            while sent < size and (chunk := source.read(min(_CHUNK, size - sent))):
                hasher.update(chunk)
                sent += len(chunk)
                yield chunk
        if sent != size or "sha256:" + hasher.hexdigest() != digest:
            raise StoreCorruptError(path, "its content does not match its digest")


def export_model(blobs: BlobStore, model: Model, raw_manifest: bytes, tags: list[str]) -> Export:
    """The archive of `model` naming it by `tags` (canonical references). Every blob is checked to be in the
    store at its size first (StoreCorruptError), so that a damaged store fails before anything is sent."""
    digests = [model.config_digest, *(layer.digest for layer in model.layers)]
    sizes = {model.config_digest: int(model.manifest["config"]["size"])}
    sizes.update((layer.digest, layer.size) for layer in model.layers)
    for digest in sizes:
        path = blobs.path(digest)
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            raise StoreCorruptError(path, f"a blob of model {model.short_id} is missing") from None
        if actual != sizes[digest]:
            raise StoreCorruptError(path, f"it is {actual} bytes, its manifest says {sizes[digest]}")
    descriptor: dict[str, Any] = {
        "mediaType": model.manifest.get("mediaType", MANIFEST_MEDIA_TYPE),
        "digest": model.id,
        "size": len(raw_manifest),
    }
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{**descriptor, "annotations": {REF_NAME: tag}} for tag in tags] or [descriptor],
    }
    members = [
        _Member(LAYOUT_NAME, canonical_json({"imageLayoutVersion": LAYOUT_VERSION})),
        _Member(INDEX_NAME, canonical_json(index)),
        _Member("blobs/", folder=True),
        _Member("blobs/sha256/", folder=True),
        _Member(_blob_name(model.id), raw_manifest),
        *(_Member(_blob_name(digest), blob=(digest, sizes[digest])) for digest in dict.fromkeys(digests)),
        _Member(MANIFEST_NAME, raw_manifest),
    ]
    return Export(blobs, members, model.created)


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest.removeprefix('sha256:')}"


# Reading


@dataclass
class Received:
    """What an archive held: the raw manifest of its model, and the references it names the model by."""

    manifest: bytes
    tags: list[str]


@dataclass
class _Reading:
    blobs: BlobStore
    written: list[str]  # blobs this archive added to the store, in order
    pin: Callable[[str], None]  # holds a blob against removal until the caller records the model
    layout: bytes | None = None
    index: bytes | None = None
    manifest: bytes | None = None

    def file(self, name: str, member: tarfile.TarInfo, data: BinaryIO) -> None:
        if name in (LAYOUT_NAME, INDEX_NAME, MANIFEST_NAME):
            check_size(f"the model archive's {name}", member.size, MAX_MANIFEST_BYTES)
            setattr(self, {LAYOUT_NAME: "layout", INDEX_NAME: "index", MANIFEST_NAME: "manifest"}[name], data.read())
        elif match := _BLOB.fullmatch(name):
            self.blob(f"sha256:{match[1]}", data)

    def blob(self, digest: str, data: BinaryIO) -> None:
        self.pin(digest)
        if self.blobs.has(digest):  # the store holds it already: the archive's copy must match it still
            hasher = hashlib.sha256()
            while chunk := data.read(_CHUNK):
                hasher.update(chunk)
            if "sha256:" + hasher.hexdigest() != digest:
                raise ArchiveDigestError(digest, "sha256:" + hasher.hexdigest())
            return
        try:
            self.blobs.write_stream(digest, data)
        except DigestMismatchError as error:
            raise ArchiveDigestError(error.expected, error.actual) from None
        self.written.append(digest)


def read_archive(
    blobs: BlobStore,
    stream: BinaryIO,
    written: list[str],
    named: bool = False,
    pin: Callable[[str], None] = lambda digest: None,
) -> Received:
    """Store the blobs of an archive (appending to `written` those it added, and giving `pin` each blob it
    writes or finds present, before it looks) and return its model.

    `named`: the caller tags the model itself, so a name in `index.json` that is a bare tag (`latest`,
    as some tools write it) is left out rather than refused.
    """
    reading = _Reading(blobs, written, pin)
    read_tar(stream, reading.file)
    if reading.index is not None:
        raw, names = _from_layout(reading)
    elif reading.manifest is not None:
        raw, names = reading.manifest, []
    else:
        raise DistributionError(
            f"the model archive has no {MANIFEST_NAME} (Docker Model Runner's load format) and no {INDEX_NAME} "
            "(an OCI image layout, as docker model save writes): it is not a model archive"
        )
    manifest = parse_manifest(raw)
    missing = []
    for desc in [manifest["config"], *manifest.get("layers", [])]:
        if not blobs.has(desc["digest"]):
            missing.append(desc["digest"])
        elif (size := blobs.size(desc["digest"])) != desc["size"]:
            raise UnsupportedFormatError(f"blob {desc['digest']} is {size} bytes, its manifest says {desc['size']}")
    if missing:
        raise DistributionError(
            f"the model archive lacks blobs its manifest names: {', '.join(missing)}; save the model again"
        )
    return Received(raw, _tags(names, named))


def _from_layout(reading: _Reading) -> tuple[bytes, list[str]]:
    """The raw manifest and the names of the one model an OCI layout holds."""
    try:
        layout = json.loads(reading.layout or b"null")
        index = json.loads(reading.index or b"null")
    except ValueError as error:
        raise UnsupportedFormatError(f"the archive's {LAYOUT_NAME} or {INDEX_NAME} is not JSON ({error})") from None
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != LAYOUT_VERSION:
        raise UnsupportedFormatError(
            f"the archive has {INDEX_NAME} but no {LAYOUT_NAME} of version {LAYOUT_VERSION}: not an OCI image layout"
        )
    descriptors = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descriptors, list) or not descriptors or not all(isinstance(d, dict) for d in descriptors):
        raise UnsupportedFormatError(f"the archive's {INDEX_NAME} lists no manifests")
    for desc in descriptors:
        if desc.get("mediaType") not in (MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE):
            raise UnsupportedFormatError(f"{INDEX_NAME} names a {desc.get('mediaType')!r}, not a model manifest")
    digests = {str(desc.get("digest")) for desc in descriptors}
    if len(digests) > 1:
        raise UnsupportedFormatError(f"the archive holds {len(digests)} models; save and load one model per archive")
    digest, size = digests.pop(), descriptors[0].get("size")
    if not _BLOB.fullmatch(_blob_name(digest)) or not reading.blobs.has(digest):
        raise UnsupportedFormatError(f"the archive's {INDEX_NAME} names the manifest {digest}, which it does not hold")
    raw = read_small(reading.blobs.path(digest), MAX_MANIFEST_BYTES)
    if len(raw) != size:
        raise UnsupportedFormatError(f"the manifest {digest} is {len(raw)} bytes, {INDEX_NAME} says {size}")
    if reading.manifest is not None and sha256_digest(reading.manifest) != digest:
        raise UnsupportedFormatError(f"the archive's {MANIFEST_NAME} is not the manifest its {INDEX_NAME} names")
    names = []
    for desc in descriptors:
        annotations = desc.get("annotations")
        if isinstance(annotations, dict) and (name := annotations.get(CONTAINERD_NAME) or annotations.get(REF_NAME)):
            names.append(str(name))
    return raw, names


def _tags(names: list[str], named: bool) -> list[str]:
    """The references of `names`; a bare tag names no repository: refused, unless the caller names the model."""
    tags = []
    for name in names:
        if "/" in name:
            try:
                tags.append(str(parse_reference(name)))
            except InvalidReferenceError as error:
                raise DistributionError(
                    f"the model archive names its model {name!r}, not a model reference ({error}): "
                    "load it with --tag NAME"
                ) from None
        elif not named:
            raise DistributionError(
                f"the model archive names its model {name!r}, a tag without a repository: "
                f"load it with --tag NAME (e.g. --tag ai/mymodel:{name})"
            )
    return tags
