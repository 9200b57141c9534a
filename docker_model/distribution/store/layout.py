"""Where everything lives in a store directory (DMR's layout) and how files are written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from docker_model.distribution.artifact import check_digest
from docker_model.files import PRIVATE_FILE, make_dirs, write_json

LAYOUT_VERSION = "1.0.0"
INCOMPLETE_SUFFIX = ".incomplete"
# Names the store gives entries of its blobs, manifests and bundles folders: a digest's hex, a partial
# download, or a temporary file or folder on its way to being renamed into place.
_TEMP_NAME = re.compile(r"\.[0-9a-f]{64}\..+\.tmp")
_ENTRY_NAME = re.compile(rf"[0-9a-f]{{64}}(?:{re.escape(INCOMPLETE_SUFFIX)})?|{_TEMP_NAME.pattern}")


class Layout:
    """Paths inside one store root; creates nothing by itself.

    What the store creates is private to its user (folders 0700, files 0600): a model may be one a user
    may not share. A root that existed before keeps its mode, and whatever else it holds.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def layout_file(self) -> Path:
        return self.root / "layout.json"

    @property
    def index_file(self) -> Path:
        return self.root / "models.json"

    @property
    def usage_file(self) -> Path:
        """When each model was last used (`usage.py`): a file of this project's, beside DMR's."""
        return self.root / "last-used.json"

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

    def written_paths(self) -> Iterator[Path]:
        """Every file and folder the store wrote, deepest first, and nothing else of the root.

        A folder the store uses (`blobs/sha256`, `blobs`) comes after its entries and is listed only when
        nothing foreign is in it, so that removing the listed paths in order leaves foreign files untouched.
        """
        for directory in (self.blobs_dir, self.manifests_dir, self.bundles_dir):
            if directory.is_dir():
                entries = list(directory.iterdir())
                owned = [entry for entry in entries if _ENTRY_NAME.fullmatch(entry.name)]
                yield from owned
                if len(owned) == len(entries):
                    yield directory
                    if not any(other != directory for other in directory.parent.iterdir()):
                        yield directory.parent
        for name in (self.index_file.name, self.layout_file.name, self.usage_file.name):
            yield from self.root.glob(f".{name}.*.tmp")
            path = self.root / name
            if path.exists():
                yield path

    def temp_files(self) -> list[Path]:
        """Files on their way to being renamed into place, or left so by a writer that died (a bundle's
        staging folder is a bundle of no listed model to the integrity check)."""
        found: list[Path] = []
        for directory in (self.blobs_dir, self.manifests_dir):
            if directory.is_dir():
                found += [entry for entry in directory.iterdir() if _TEMP_NAME.fullmatch(entry.name)]
        for name in (self.index_file.name, self.layout_file.name, self.usage_file.name):
            found += self.root.glob(f".{name}.*.tmp")
        return sorted(found)

    def ensure(self) -> None:
        """Create the directories and `layout.json` if missing (the store is made lazily, on first write)."""
        for directory in (self.blobs_dir, self.manifests_dir, self.bundles_dir):
            make_dirs(directory)
        if not self.layout_file.exists():
            write_json(self.layout_file, {"version": LAYOUT_VERSION}, mode=PRIVATE_FILE)
