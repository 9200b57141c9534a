"""Turn local files (a GGUF or its shards, licenses, a chat template, a projector) into a model artifact."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from docker_model.distribution import artifact
from docker_model.distribution.artifact import Artifact, Layer, file_digest
from docker_model.distribution.errors import UnsupportedFormatError
from docker_model.distribution.gguf_metadata import find_shards, read_gguf_info

GGUF_MAGIC = b"GGUF"
PROJECTOR_ARCHITECTURE = "clip"


def layer_from_file(
    path: Path, media_type: str, name: str | None = None, mtime: datetime | None = None, digest: str | None = None
) -> Layer:
    """A layer for `path`, annotated as Docker does.

    `name`, `mtime` and `digest` stand in for the file's own when it is a store blob: its digest is known.
    """
    stat = os.stat(path)
    if digest is None:
        digest, size = file_digest(path)
    else:
        size = stat.st_size
    moment = mtime or datetime.fromtimestamp(stat.st_mtime, timezone.utc)
    annotations = artifact.file_annotations(name or path.name, stat.st_mode & 0o777, size, moment)
    return Layer(digest, size, media_type, annotations, source=path)


def model_config(gguf_shards: Sequence[Path], context_size: int | None = None) -> dict[str, Any]:
    """The `config` object for a GGUF model. `context_size` is recorded only when given, as Docker does:
    a runner then picks its own default, capped at the trained length in the GGUF metadata."""
    info = read_gguf_info(list(gguf_shards))
    config: dict[str, Any] = {"format": "gguf"}
    for key, value in (
        ("quantization", info.quantization),
        ("parameters", info.parameters),
        ("architecture", info.architecture),
        ("size", info.size),
    ):
        if value:
            config[key] = value
    if info.metadata:
        config["gguf"] = dict(sorted(info.metadata.items()))
    if context_size is not None:
        config["context_size"] = context_size
    return config


def _check_gguf(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise UnsupportedFormatError(f"{path} is not a GGUF file")


def _check_projector(path: Path) -> None:
    """A multimodal projector is a GGUF file of llama.cpp's `clip` architecture."""
    _check_gguf(path)
    architecture = read_gguf_info([path]).architecture
    if architecture != PROJECTOR_ARCHITECTURE:
        raise UnsupportedFormatError(
            f"{path} is not a multimodal projector (its GGUF architecture is {architecture or 'not set'!r}, "
            f"a projector's is {PROJECTOR_ARCHITECTURE!r})"
        )


def _check_chat_template(path: Path) -> None:
    """A chat template must be UTF-8 text that parses as Jinja, or every chat with the model would fail."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        source = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnsupportedFormatError(
            f"chat template {path} is not UTF-8 text (byte {error.start}): convert it, e.g. with iconv"
        ) from None
    try:
        ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"]).parse(source)
    except TemplateSyntaxError as error:
        raise UnsupportedFormatError(
            f"chat template {path} is not valid Jinja (line {error.lineno}: {error.message})"
        ) from None


def package(
    gguf: Path,
    licenses: Sequence[Path] = (),
    chat_template: Path | None = None,
    mmproj: Path | None = None,
    context_size: int | None = None,
    created: datetime | None = None,
) -> Artifact:
    """Build the artifact of a GGUF model; a sharded model is named by its first shard."""
    gguf = Path(gguf)
    _check_gguf(gguf)
    shards = find_shards(gguf)
    for shard in shards[1:]:
        _check_gguf(shard)
    if context_size is not None and context_size <= 0:
        raise ValueError(f"context size must be a positive number of tokens, not {context_size}")
    layers = [layer_from_file(shard, artifact.GGUF) for shard in shards]
    layers += [layer_from_file(Path(p), artifact.LICENSE) for p in licenses]
    if mmproj is not None:
        _check_projector(Path(mmproj))
        layers.append(layer_from_file(Path(mmproj), artifact.MMPROJ))
    if chat_template is not None:
        _check_chat_template(Path(chat_template))
        layers.append(layer_from_file(Path(chat_template), artifact.CHAT_TEMPLATE))
    config = model_config(shards, context_size)
    return artifact.build_artifact(config, layers, created or datetime.now(timezone.utc))
