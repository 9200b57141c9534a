"""Where everything lives in a store directory (DMR's layout, SPEC §3) and how files are written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from docker_model.distribution.artifact import check_digest

LAYOUT_VERSION = "1.0.0"
INCOMPLETE_SUFFIX = ".incomplete"


class Layout:
    """Paths inside one store root; creates nothing by itself."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def layout_file(self) -> Path:
        return self.root / "layout.json"

    @property
    def index_file(self) -> Path:
        return self.root / "models.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests" / "sha256"

    @property
    def bundles_dir(self) -> Path:
        return self.root / "bundles" / "sha256"

    def blob(self, digest: str) -> Path:
        return self.blobs_dir / check_digest(digest).removeprefix("sha256:")

    def incomplete(self, digest: str) -> Path:
        return self.blob(digest).with_name(self.blob(digest).name + INCOMPLETE_SUFFIX)

    def manifest(self, model_id: str) -> Path:
        return self.manifests_dir / check_digest(model_id).removeprefix("sha256:")

    def bundle(self, model_id: str) -> Path:
        return self.bundles_dir / check_digest(model_id).removeprefix("sha256:")

    def ensure(self) -> None:
        """Create the directories and `layout.json` if missing (the store is made lazily, on first write)."""
        for directory in (self.blobs_dir, self.manifests_dir, self.bundles_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if not self.layout_file.exists():
            write_json(self.layout_file, {"version": LAYOUT_VERSION})


def atomic_write(path: Path, data: bytes, sync: bool = True) -> None:
    """Write `data` to a temp file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, json.dumps(value, indent=2).encode() + b"\n")
