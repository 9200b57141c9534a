"""The local model store: one Store over blobs, manifests, the index and runtime bundles.

Reads need no lock (every file is replaced atomically); writes to the index, manifests and bundles hold
an exclusive file lock on `<root>/.lock`, and blob downloads lock their own `.incomplete` file.

A pull or a load writes a model's blobs (or finds them present) before it records the model in the index:
meanwhile no model lists them. It pins them (`Store.pinned`) until it is done, so that no removal deletes
them (removing another model that shares them, a failed load's clean-up, `check --repair`) and the check
does not count them as leftovers.
"""

from __future__ import annotations

import builtins
import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from docker_model.distribution.artifact import (
    MAX_CONFIG_BYTES,
    Artifact,
    check_size,
    created_timestamp,
    parse_manifest,
)
from docker_model.distribution.errors import (
    ConflictError,
    DistributionError,
    ModelNotFoundError,
    StoreCorruptError,
)
from docker_model.distribution.model import Model
from docker_model.distribution.store.blobs import BlobStore
from docker_model.distribution.store.bundles import Bundle, make_bundle, remove_bundle
from docker_model.distribution.store.index import Index, IndexEntry, read_index, write_index
from docker_model.distribution.store.layout import Layout
from docker_model.distribution.store.locks import exclusive
from docker_model.distribution.store.manifests import ManifestStore, read_small
from docker_model.reference import InvalidReferenceError, display_name, is_id_prefix, parse_reference, short_id

if TYPE_CHECKING:
    from docker_model.distribution.store.check import CheckReport

__all__ = ["Bundle", "Store"]


def canonical_tag(text: str) -> str:
    """The stored form of a tag: `docker.io/ai/smollm2:latest`. Digests cannot be tags."""
    ref = parse_reference(text)
    if ref.digest is not None:
        raise InvalidReferenceError(text, "a tag cannot contain a digest")
    return str(ref)


class Store:
    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            from docker_model import settings

            root = settings.models_path()
        self.root = Path(root)
        self.layout = Layout(self.root)
        self.blobs = BlobStore(self.layout)
        self.manifests = ManifestStore(self.layout)
        self._pins: Counter[str] = Counter()  # digest -> how many pulls and loads under way hold it
        self._pins_lock = threading.Lock()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access to the index, manifests and bundles, across threads and processes."""
        self.layout.ensure()
        with exclusive(self.layout.lock_file):
            yield

    @contextmanager
    def pinned(self, digests: Iterable[str] = ()) -> Iterator[Callable[[str], None]]:
        """Hold `digests`, and each digest given to the function yielded, for the block: blobs a pull or a
        load writes or finds present, before it records its model. Pin a digest before looking for its
        blob, so that no removal comes in between."""
        held: builtins.list[str] = []

        def pin(digest: str) -> None:
            with self._pins_lock:
                self._pins[digest] += 1
            held.append(digest)

        try:
            for digest in digests:
                pin(digest)
            yield pin
        finally:
            with self._pins_lock:
                self._pins.subtract(held)
                for digest in set(held):
                    if self._pins[digest] <= 0:
                        del self._pins[digest]

    def pinned_digests(self) -> frozenset[str]:
        with self._pins_lock:
            return frozenset(self._pins)

    def remove_unpinned_blobs(self, digests: Iterable[str]) -> builtins.list[str]:
        """Remove those of `digests` no pull or load holds; return those removed. Call under the store lock."""
        removed = []
        with self._pins_lock:  # no pin comes between the look and the removal
            for digest in digests:
                if digest not in self._pins:
                    self.blobs.remove(digest)
                    removed.append(digest)
        return removed

    def read_index(self) -> Index:
        return read_index(self.layout.index_file)

    def write_index(self, index: Index) -> None:
        write_index(self.layout.index_file, index)

    def model_for(self, entry: IndexEntry) -> Model:
        manifest = json.loads(self.manifests.read(entry.id))
        config_path = self.blobs.path(manifest["config"]["digest"])
        try:
            document = json.loads(read_small(config_path, MAX_CONFIG_BYTES))
        except (FileNotFoundError, ValueError) as exc:
            raise StoreCorruptError(config_path, f"config of model {entry.id} unreadable: {exc}") from None
        size = sum(int(layer["size"]) for layer in manifest.get("layers", []))
        return Model(
            entry.id,
            list(entry.tags),
            created_timestamp(document),
            document.get("config") or {},
            manifest,
            size,
        )

    def list(self) -> list[Model]:
        """Every model whose manifest and config are readable (`check` reports the others)."""
        models = []
        for entry in self.read_index().models:
            try:
                models.append(self.model_for(entry))
            except StoreCorruptError:
                continue
        return models

    def get(self, name_or_id: str) -> Model:
        """A model by any reference form, by ID, or by an ID prefix of 12+ hex digits."""
        entry, _ = self._resolve(self.read_index(), name_or_id)
        return self.model_for(entry)

    def has_model(self, model_id: str) -> bool:
        return self.read_index().find(model_id) is not None

    def _resolve(self, index: Index, text: str) -> tuple[IndexEntry, str | None]:
        """The model `text` names and, when named by tag, that tag (canonical).

        As Docker does: a full ID, else a name, else any unique prefix of an ID (an ambiguous one is
        refused, listing the models it could mean).
        """
        hex_digits = text.removeprefix("sha256:")
        if is_id_prefix(text) and len(hex_digits) == 64:
            entry = index.find(f"sha256:{hex_digits}")
            if entry is not None:
                return entry, None
        try:
            ref = parse_reference(text)
        except InvalidReferenceError:
            if not is_id_prefix(text):
                raise
            ref = None
        if ref is not None and ref.digest is not None:
            entry = index.find(ref.digest)
            if entry is not None:
                return entry, None
        elif ref is not None:
            entry = index.with_tag(str(ref))
            if entry is not None:
                return entry, str(ref)
        if is_id_prefix(text):
            matches = [m for m in index.models if m.id.removeprefix("sha256:").startswith(hex_digits)]
            if len(matches) > 1:
                candidates = ", ".join(
                    f"{short_id(m.id)} ({', '.join(display_name(t) for t in m.tags) or 'untagged'})" for m in matches
                )
                raise ConflictError(f"model ID prefix {text!r} is ambiguous: it starts {candidates}; give more digits")
            if matches:
                return matches[0], None
        raise ModelNotFoundError(text)

    def tag(self, source: str, target: str) -> None:
        """Give `target` to the model `source` names; a tag belongs to one model, so it moves."""
        tag = canonical_tag(target)
        with self.locked():
            index = self.read_index()
            entry, _ = self._resolve(index, source)
            index.tag(entry.id, tag)
            self.write_index(index)

    def add_tags(self, model_id: str, tags: Iterable[str]) -> bool:
        """Tag a stored model; False when it is not (or no longer) stored, e.g. removed meanwhile."""
        with self.locked():
            index = self.read_index()
            if index.find(model_id) is None:
                return False
            for tag in tags:
                index.tag(model_id, canonical_tag(tag))
            self.write_index(index)
            return True

    def remove(self, name_or_id: str, force: bool = False) -> builtins.list[tuple[str, str]]:
        """Untag, and delete the model once no tag is left: `[("Untagged", tag), ("Deleted", id)]`.

        A model with several tags named by ID is only deleted with `force` (else ConflictError); blobs
        another model uses stay.
        """
        with self.locked():
            index = self.read_index()
            entry, tag = self._resolve(index, name_or_id)
            if tag is not None and len(entry.tags) > 1:
                index.untag(tag)
                self.write_index(index)
                return [("Untagged", tag)]
            if tag is None and len(entry.tags) > 1 and not force:
                names = ", ".join(display_name(t) for t in entry.tags)
                raise ConflictError(
                    f"model {short_id(entry.id)} has several tags ({names}): remove it by name, or force it"
                )
            in_use = index.blobs_in_use(excluding=entry.id)
            index.remove(entry.id)
            self.write_index(index)  # the index never names a model whose files are going
            self.manifests.remove(entry.id)
            remove_bundle(self.layout, entry.id)
            self.remove_unpinned_blobs(digest for digest in entry.files if digest not in in_use)
        return [("Untagged", t) for t in entry.tags] + [("Deleted", entry.id)]

    def record(self, manifest_bytes: bytes, tags: Iterable[str] = ()) -> Model:
        """Record a model whose blobs are all present (and so verified); return it."""
        manifest = parse_manifest(manifest_bytes)
        files = [d["digest"] for d in manifest.get("layers", [])] + [manifest["config"]["digest"]]
        canonical = [canonical_tag(t) for t in tags]
        with self.locked():
            missing = [d for d in files if not self.blobs.has(d)]
            if missing:
                raise DistributionError(f"cannot record the model: blobs missing from the store: {', '.join(missing)}")
            check_size("the model config", self.blobs.size(manifest["config"]["digest"]), MAX_CONFIG_BYTES)
            model_id = self.manifests.write(manifest_bytes)
            index = self.read_index()
            entry = index.add(IndexEntry(model_id, [], files))
            for tag in canonical:
                index.tag(model_id, tag)
            self.write_index(index)
            model = self.model_for(entry)
        self.record_use({model_id: time.time()})  # pulled or loaded: in use
        return model

    def write_artifact(self, artifact: Artifact, tags: Iterable[str] = ()) -> Model:
        """Store a packaged artifact: config, layers (copied from their sources), then the manifest."""
        self.layout.ensure()
        with self.pinned([artifact.config_digest, *(layer.digest for layer in artifact.layers)]):
            self.blobs.write_bytes(artifact.config_digest, artifact.config_bytes)
            for layer in artifact.layers:
                if self.blobs.has(layer.digest):
                    continue
                if layer.source is None:
                    raise DistributionError(f"layer {layer.digest} has no local file to store")
                self.blobs.write_file(layer.digest, layer.source)
            return self.record(artifact.manifest_bytes, tags)

    def load(self, tar_stream: BinaryIO, tags: Iterable[str] = ()) -> Model:
        """Store a model sent as an archive: the OCI image layout `docker model save` writes, or DMR's tar of
        `blobs/sha256/<hex>` files and `manifest.json`. Tagged with the names the archive gives and `tags`.

        A refused archive leaves the store as it was: the blobs it added are removed again (but those another
        load or pull holds meanwhile).
        """
        from docker_model.distribution.store.oci_layout import read_archive

        tags = builtins.list(tags)
        written: builtins.list[str] = []
        try:
            with self.pinned() as pin:
                received = read_archive(self.blobs, tar_stream, written, named=bool(tags), pin=pin)
                model = self.record(received.manifest, [*received.tags, *tags])
        finally:
            self._remove_unused(written)  # all of them after a failure; the manifest's copy as a blob after success
        return model

    def _remove_unused(self, digests: Iterable[str]) -> None:
        """Remove those of `digests` no listed model uses and no pull or load holds."""
        with self.locked():
            in_use = self.read_index().blobs_in_use()
            self.remove_unpinned_blobs(digest for digest in digests if digest not in in_use)

    def record_use(self, uses: dict[str, float]) -> None:
        """Record when models were last used (model ID -> unix time), for `prune`."""
        from docker_model.distribution.store.usage import record_use

        record_use(self, uses)

    def bundle(self, model: Model) -> Bundle:
        """Plain file paths for an engine, as hard links into the blobs (copies where links fail)."""
        with self.locked():
            return make_bundle(self.layout, self.blobs, model)

    def disk_usage(self) -> int:
        """Bytes used by blobs, partial downloads included: they take the disk too, until resumed or purged."""
        partial = 0
        for path in self.blobs.incomplete_files():
            with suppress(FileNotFoundError):  # finished (renamed) since it was listed: counted as a blob
                partial += path.stat().st_size
        return sum(self.blobs.size(d) for d in self.blobs.digests()) + partial

    def check(self, repair: bool = False) -> builtins.list[str]:
        """Problems found (an empty list when healthy); with `repair`, also fix them."""
        return self.check_report(repair).problems

    def check_report(self, repair: bool = False) -> CheckReport:
        """The integrity check: every blob of every listed model verified, leftovers found (and fixed with
        `repair`); what it found, fixed and verified."""
        from docker_model.distribution.store.check import check_store

        with self.locked():
            return check_store(self, repair)

    def purge(self) -> None:
        """Delete every model, blob and partial download: only what the store wrote, so a `MODELS_PATH`
        shared with other files keeps them."""
        if not self.layout.layout_file.exists():
            if self.root.is_dir() and any(p.name != self.layout.lock_file.name for p in self.root.iterdir()):
                raise DistributionError(
                    f"refusing to purge {self.root}: it has no layout.json, so it is not a model store"
                )
            return
        with self.locked():
            for path in list(self.layout.written_paths()):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)  # a bundle, or a folder of the store's that is empty by now
                else:
                    path.unlink(missing_ok=True)
