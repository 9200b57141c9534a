"""Raw manifests under `manifests/sha256/<model id hex>`, kept byte for byte (the bytes are the ID)."""

from __future__ import annotations

from docker_model.distribution.artifact import sha256_digest
from docker_model.distribution.errors import StoreCorruptError
from docker_model.distribution.store.layout import Layout
from docker_model.files import atomic_write


class ManifestStore:
    def __init__(self, layout: Layout) -> None:
        self._layout = layout

    def write(self, raw: bytes) -> str:
        model_id = sha256_digest(raw)
        path = self._layout.manifest(model_id)
        if not path.is_file():
            atomic_write(path, raw)
        return model_id

    def read(self, model_id: str) -> bytes:
        path = self._layout.manifest(model_id)
        try:
            raw = path.read_bytes()
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
