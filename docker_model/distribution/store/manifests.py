"""Raw manifests under `manifests/sha256/<model id hex>`, kept byte for byte (the bytes are the ID)."""

from __future__ import annotations

from pathlib import Path

from docker_model.distribution.artifact import MAX_MANIFEST_BYTES, sha256_digest
from docker_model.distribution.errors import StoreCorruptError
from docker_model.distribution.store.layout import Layout
from docker_model.files import PRIVATE_FILE, atomic_write


def read_small(path: Path, limit: int) -> bytes:
    """A manifest or config of the store, read whole only within `limit`: a bigger one is damaged."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise StoreCorruptError(path, f"over the {limit >> 20} MiB limit for it")
    return data


class ManifestStore:
    def __init__(self, layout: Layout) -> None:
        self._layout = layout

    def write(self, raw: bytes) -> str:
        model_id = sha256_digest(raw)
        path = self._layout.manifest(model_id)
        if not path.is_file():
            atomic_write(path, raw, mode=PRIVATE_FILE)
        return model_id

    def read(self, model_id: str) -> bytes:
        path = self._layout.manifest(model_id)
        try:
            raw = read_small(path, MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise StoreCorruptError(path, "the manifest of a listed model is missing") from None
        return raw

    def exists(self, model_id: str) -> bool:
        return self._layout.manifest(model_id).is_file()

    def remove(self, model_id: str) -> None:
        self._layout.manifest(model_id).unlink(missing_ok=True)

    def ids(self) -> list[str]:
        directory = self._layout.manifests_dir
        if not directory.is_dir():
            return []
        return [f"sha256:{p.name}" for p in directory.iterdir() if len(p.name) == 64]
