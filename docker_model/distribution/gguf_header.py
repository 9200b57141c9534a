"""A GGUF file's metadata and tensor sizes, read straight from its header, fast.

The `gguf` package's reader takes seconds on a large vocabulary (it makes objects of every token and
merge); this one skips the arrays a size estimate does not need: strings, and numbers longer than
SMALL_ARRAY. Used before a model loads, where seconds count.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
SMALL_ARRAY = 4096  # longer arrays of numbers (token scores and types) are skipped


class GGUFHeader:
    """The metadata (`values`; the length of every array in `array_lengths`) and tensor sizes (`tensor_bytes`,
    padding included) of one GGUF file."""

    def __init__(self, path: Path):
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            self.data, self.pos = data, 0
            magic, version = self._unpack("<4sI")
            if magic != b"GGUF" or version < 2:
                raise ValueError(f"{path} is not a GGUF file of version 2 or later")
            n_tensors, n_kv = self._unpack("<QQ")
            self.values: dict[str, Any] = {}
            self.array_lengths: dict[str, int] = {}
            for _ in range(n_kv):
                self._read_pair()
            offsets = {}
            for _ in range(n_tensors):
                name = self._string()
                (n_dims,) = self._unpack("<I")
                offsets[name] = self._unpack(f"<{n_dims}QIQ")[-1]
            alignment = int(self.values.get("general.alignment", 32))
            start = -(-self.pos // alignment) * alignment
            starts = sorted(offsets.values())
            ends = dict(zip(starts, [*starts[1:], len(data) - start], strict=False))  # sizes with their padding
            self.tensor_bytes = {name: ends[offset] - offset for name, offset in offsets.items()}
            del self.data

    def _unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def _string(self) -> str:
        (length,) = self._unpack("<Q")
        self.pos += length
        return bytes(self.data[self.pos - length : self.pos]).decode("utf-8", "replace")

    def _read_pair(self) -> None:
        key = self._string()
        (kind,) = self._unpack("<I")
        if kind != _ARRAY:
            self.values[key] = self._value(kind)
            return
        kind, count = self._unpack("<IQ")
        self.array_lengths[key] = count
        if kind in _SCALARS and count <= SMALL_ARRAY:
            self.values[key] = list(self._unpack(f"<{count}{_SCALARS[kind]}"))
        elif kind in _SCALARS:
            self.pos += count * struct.calcsize(_SCALARS[kind])
        else:
            for _ in range(count):
                self._value(kind)

    def _value(self, kind: int) -> Any:
        if kind == _STRING:
            return self._string()
        if kind == _ARRAY:
            raise ValueError("nested GGUF arrays are not read")
        return self._unpack(f"<{_SCALARS[kind]}")[0]
