"""The OCI artifact of a model: media types, config and manifest, built and read."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from docker_model.distribution.errors import UnsupportedFormatError

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.ai.model.config.v0.1+json"
CONFIG_MEDIA_TYPE_V02 = "application/vnd.docker.ai.model.config.v0.2+json"
SUPPORTED_CONFIG_MEDIA_TYPES = (CONFIG_MEDIA_TYPE, CONFIG_MEDIA_TYPE_V02)

GGUF = "application/vnd.docker.ai.gguf.v3"
LICENSE = "application/vnd.docker.ai.license"
MMPROJ = "application/vnd.docker.ai.mmproj"
CHAT_TEMPLATE = "application/vnd.docker.ai.chat.template.jinja"

ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"
ANNOTATION_MEDIATYPE_UNTESTED = "org.cncf.model.file.mediatype.untested"

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# Limits on what is read into memory whole. Registries refuse manifests over 4 MiB (distribution's own
# limit); a model config holds GGUF metadata without its long arrays, a few KiB. Past these, it is not a
# model this library made or reads, and reading it would only cost memory.
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 4 << 20


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 digest and size of a file, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
            size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size


def check_digest(digest: str) -> str:
    """Return `digest` if it is a well-formed sha256 digest (safe to use in a path), else raise ValueError."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest


def canonical_json(value: Any) -> bytes:
    """Compact JSON, as Go's encoder writes it (map keys sorted by the caller where it matters)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> datetime:
    """Parse RFC 3339 times as Go writes them (nanoseconds, `Z` or an offset)."""
    match = re.fullmatch(r"(.+?T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}")


@dataclass(frozen=True)
class Layer:
    """A manifest layer; `source` is the local file holding its bytes when there is one."""

    digest: str
    size: int
    media_type: str
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    source: Path | None = field(default=None, compare=False)

    def descriptor(self) -> dict[str, Any]:
        desc: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.annotations:
            desc["annotations"] = self.annotations
        return desc

    @property
    def filepath(self) -> str | None:
        return self.annotations.get(ANNOTATION_FILEPATH)


def file_annotations(name: str, mode: int, size: int, mtime: datetime) -> dict[str, str]:
    """The CNCF file annotations Docker Model Runner puts on every layer made from a file."""
    metadata = {
        "name": name,
        "mode": mode,
        "uid": 0,
        "gid": 0,
        "size": size,
        "mtime": rfc3339(mtime),
        "typeflag": 0,
    }
    return {
        ANNOTATION_FILEPATH: name,
        ANNOTATION_FILE_METADATA: json.dumps(metadata, separators=(",", ":")),
        ANNOTATION_MEDIATYPE_UNTESTED: "false",
    }


@dataclass(frozen=True)
class Artifact:
    """A complete model artifact: the raw config and manifest bytes and the layers they name."""

    config_bytes: bytes
    manifest_bytes: bytes
    layers: tuple[Layer, ...]

    @property
    def id(self) -> str:
        return sha256_digest(self.manifest_bytes)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config_bytes)

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_bytes)


def build_config(model_config: dict[str, Any], layers: list[Layer], created: datetime) -> bytes:
    """The config blob: `config` (model facts), `descriptor.created` and `rootfs.diff_ids`."""
    document = {
        "config": model_config,
        "descriptor": {"created": rfc3339(created)},
        "rootfs": {"type": "rootfs", "diff_ids": [layer.digest for layer in layers]},
    }
    return canonical_json(document)


def build_artifact(model_config: dict[str, Any], layers: list[Layer], created: datetime) -> Artifact:
    config_bytes = build_config(model_config, layers, created)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "size": len(config_bytes),
            "digest": sha256_digest(config_bytes),
        },
        "layers": [layer.descriptor() for layer in layers],
    }
    return Artifact(config_bytes, canonical_json(manifest), tuple(layers))


def check_size(what: str, size: int, limit: int) -> None:
    """Refuse a manifest or config over its limit, before it is read (UnsupportedFormatError)."""
    if size > limit:
        raise UnsupportedFormatError(f"{what} is {size} bytes, over the {limit >> 20} MiB limit for it")


def parse_manifest(raw: bytes) -> dict[str, Any]:
    """Decode a model manifest and check it names a model config; raise UnsupportedFormatError if not."""
    check_size("the manifest", len(raw), MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise UnsupportedFormatError(f"the manifest is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
        raise UnsupportedFormatError("the manifest is not an OCI image manifest (schemaVersion 2)")
    media_type = manifest.get("mediaType", MANIFEST_MEDIA_TYPE)
    if media_type not in (MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE):
        raise UnsupportedFormatError(f"manifest media type {media_type!r} (an image index or a container image?)")
    config, layers = manifest.get("config"), manifest.get("layers", [])
    if not isinstance(config, dict) or not isinstance(layers, list) or not all(isinstance(d, dict) for d in layers):
        raise UnsupportedFormatError("the manifest's config and layers are not descriptors (JSON objects)")
    if config.get("mediaType") not in SUPPORTED_CONFIG_MEDIA_TYPES:
        raise UnsupportedFormatError(f"config media type {config.get('mediaType')!r} is not a Docker model config")
    for desc in [config, *layers]:
        if not _DIGEST.fullmatch(str(desc.get("digest", ""))):
            raise UnsupportedFormatError(f"descriptor digest {desc.get('digest')!r} is not a sha256 digest")
        size = desc.get("size")
        if type(size) is not int or size < 0:  # limits and ranges compare with it: a byte count, not a bool
            raise UnsupportedFormatError(f"descriptor size {size!r} of {desc['digest']} is not a byte count")
    return manifest


def manifest_layers(manifest: dict[str, Any]) -> list[Layer]:
    return [
        Layer(d["digest"], int(d["size"]), d["mediaType"], dict(d.get("annotations") or {}))
        for d in manifest.get("layers", [])
    ]


def created_timestamp(config_document: dict[str, Any]) -> int:
    """Unix time of `descriptor.created`, 0 when absent or unreadable."""
    text = (config_document.get("descriptor") or {}).get("created")
    try:
        return int(parse_rfc3339(text).timestamp()) if text else 0
    except ValueError:
        return 0
