"""`models.json`: which models the store holds, their tags and the blobs each one uses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from docker_model.distribution.errors import StoreCorruptError
from docker_model.files import PRIVATE_FILE, write_json
from docker_model.reference import current_tag


@dataclass
class IndexEntry:
    id: str
    tags: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "tags": self.tags, "files": self.files}


@dataclass
class Index:
    models: list[IndexEntry] = field(default_factory=list)

    def find(self, model_id: str) -> IndexEntry | None:
        return next((m for m in self.models if m.id == model_id), None)

    def with_tag(self, tag: str) -> IndexEntry | None:
        return next((m for m in self.models if tag in m.tags), None)

    def add(self, entry: IndexEntry) -> IndexEntry:
        """Record `entry` unless its ID is already there; return the recorded entry."""
        existing = self.find(entry.id)
        if existing is not None:
            return existing
        self.models.append(entry)
        return entry

    def tag(self, model_id: str, tag: str) -> None:
        """Give `tag` to the model `model_id`, taking it from whichever model had it."""
        entry = self.find(model_id)
        if entry is None:
            raise KeyError(model_id)
        self.untag(tag)
        entry.tags.append(tag)

    def untag(self, tag: str) -> IndexEntry | None:
        """Remove `tag` wherever it is; return the (first) model that had it."""
        owner = self.with_tag(tag)
        for entry in self.models:
            entry.tags[:] = [t for t in entry.tags if t != tag]
        return owner

    def remove(self, model_id: str) -> None:
        self.models = [m for m in self.models if m.id != model_id]

    def blobs_in_use(self, excluding: str | None = None) -> set[str]:
        return {f for m in self.models if m.id != excluding for f in m.files}


def read_index(path: Path) -> Index:
    """The index, its tags in today's form (`current_tag`): the next write stores them so."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return Index()
    except ValueError as exc:
        raise StoreCorruptError(path, f"not JSON: {exc}") from None
    try:
        stored = [(m["id"], list(m.get("tags") or []), list(m.get("files") or [])) for m in document["models"]]
        tags = _tags_once([entry_tags for _, entry_tags, _ in stored])
    except (KeyError, TypeError, AttributeError) as exc:  # AttributeError: a tag that is not a string
        raise StoreCorruptError(path, f"unexpected structure: {exc!r}") from None
    return Index([IndexEntry(model_id, owned, files) for (model_id, _, files), owned in zip(stored, tags, strict=True)])


def _tags_once(stored: list[list[str]]) -> list[list[str]]:
    """Each entry's tags in today's form, each tag kept by one entry only: two entries may have held one
    tag in its two forms (`hf.co/...` and `huggingface.co/...`); the one that held it in today's form keeps
    it, else the first."""
    owner: dict[str, int] = {}
    for today_only in (True, False):
        for number, tags in enumerate(stored):
            for tag in tags:
                if not today_only or current_tag(tag) == tag:
                    owner.setdefault(current_tag(tag), number)
    return [
        [*dict.fromkeys(current for tag in tags if owner[current := current_tag(tag)] == number)]
        for number, tags in enumerate(stored)
    ]


def write_index(path: Path, index: Index) -> None:
    write_json(path, {"models": [m.to_json() for m in index.models]}, mode=PRIVATE_FILE)
