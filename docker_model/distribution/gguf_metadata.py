"""What a model config says about a GGUF model, read with the `gguf` package.

The formatting follows Docker Model Runner, so configs built here read the same as Docker's:
parameters `134.52M`, size `98.36MiB`, quantization `Q4_1`, every metadata value as a string.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gguf import GGUFValueType, LlamaFileType, ReaderField

MAX_ARRAY_LENGTH = 50
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
_NUMBER_UNITS = ((1e15, "Q"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))
_BYTE_UNITS = (
    (2.0**50, "Pi"),
    (1e15, "P"),
    (2.0**40, "Ti"),
    (1e12, "T"),
    (2.0**30, "Gi"),
    (1e9, "G"),
    (2.0**20, "Mi"),
    (1e6, "M"),
    (2.0**10, "Ki"),
    (1e3, "K"),
)


@dataclass
class GGUFInfo:
    """The config fields derived from a GGUF model (all of its shards)."""

    architecture: str = ""
    quantization: str = ""
    parameters: str = ""
    size: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


def find_shards(path: Path) -> list[Path]:
    """All shards of a sharded GGUF named by its first `*-00001-of-0000N.gguf`, else just `path`."""
    match = _SHARD.match(path.name)
    if match is None:
        return [path]
    count = int(match["count"])
    if int(match["index"]) != 1:
        raise ValueError(f"{path.name} is not the first shard: name the *-00001-of-{count:05d}.gguf file")
    shards = [path.with_name(f"{match['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise ValueError(f"shards missing next to {path.name}: {', '.join(missing)}")
    return shards


def read_gguf_info(shards: list[Path]) -> GGUFInfo:
    """Read metadata from the first shard and sum parameters and weight bytes over all shards."""
    import gguf  # heavy (numpy): imported only when a GGUF file is actually read

    first = gguf.GGUFReader(shards[0])
    metadata = {
        name: text
        for name, fld in first.fields.items()
        if not name.startswith("GGUF.") and (text := _field_text(fld, gguf.GGUFValueType)) is not None
    }
    parameters = sum(t.n_elements for t in first.tensors)
    weight_bytes = os.path.getsize(shards[0]) - first.data_offset
    for shard in shards[1:]:
        reader = gguf.GGUFReader(shard)
        parameters += sum(t.n_elements for t in reader.tensors)
        weight_bytes += os.path.getsize(shard) - reader.data_offset

    architecture = metadata.get("general.architecture", "")
    return GGUFInfo(
        architecture=architecture.strip(),
        quantization=_quantization(metadata.get("general.file_type"), gguf.LlamaFileType),
        parameters=format_number(parameters),
        size=format_bytes(weight_bytes),
        metadata=metadata,
    )


def _field_text(fld: ReaderField, value_type: type[GGUFValueType]) -> str | None:
    if fld.types[0] == value_type.ARRAY:
        if len(fld.data) > MAX_ARRAY_LENGTH:
            return None
        if fld.types[-1] == value_type.ARRAY:
            return ""  # nested arrays are not rendered, as in Docker Model Runner
        return ", ".join(_scalar_text(v) for v in fld.contents())
    return _scalar_text(fld.contents())


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:f}"
    return str(value)


def _quantization(file_type: str | None, names: type[LlamaFileType]) -> str:
    if file_type is None or not file_type.isdigit():
        return ""
    try:
        name = names(int(file_type)).name
    except ValueError:
        return ""
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def format_number(count: int) -> str:
    """A parameter count with an SI unit and two decimals at most: `134.52M`, `4B`."""
    return _scaled(count, _NUMBER_UNITS, "")


def format_bytes(count: int) -> str:
    """A byte count the way Docker Model Runner shows model sizes: `98.36MiB`, `1.2GB`, `512B`."""
    return _scaled(count, _BYTE_UNITS, "B")


def _scaled(count: int, units: tuple[tuple[float, str], ...], suffix: str) -> str:
    base, unit = next(((b, u) for b, u in units if count >= b), (1.0, ""))
    text = f"{count / base:.2f}".removesuffix(".00")
    return f"{text}{unit}{suffix}"
