"""The store's integrity check: every listed model whole and verified, nothing left dangling."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from docker_model.distribution.artifact import file_digest
from docker_model.distribution.errors import StoreCorruptError
from docker_model.distribution.store.bundles import bundle_is_intact, remove_bundle
from docker_model.distribution.store.index import Index
from docker_model.distribution.store.usage import read_last_used

if TYPE_CHECKING:
    from docker_model.distribution.store import Store

STALE_INCOMPLETE_SECONDS = 7 * 24 * 3600
STALE_TEMP_SECONDS = 3600  # a temp file lives for one small write: an hour old, its writer died


@dataclass
class CheckReport:
    """What a check found (`problems`, each saying what repair did when it repaired) and what it verified."""

    models: int = 0  # models listed in the index
    blobs: int = 0  # blobs of listed models whose digest was computed
    verified_bytes: int = 0  # bytes of the blobs that matched their digest
    problems: list[str] = field(default_factory=list)
    removed_models: list[str] = field(default_factory=list)  # IDs of the models repair dropped


def check_store(store: Store, repair: bool) -> CheckReport:
    """Report (and with `repair`, fix) damage. Call under the store lock.

    A model with a missing or corrupt file is dropped on repair (pull it again); unused blobs and
    manifests, stale partial downloads and temp files, and damaged bundles are deleted. Blobs a pull or a
    load under way holds (`Store.pinned`) are none of these: it records them in a moment.
    """
    report = CheckReport()
    problems = report.problems
    index = store.read_index()
    report.models = len(index.models)
    verified: dict[str, bool] = {}

    def blob_ok(digest: str) -> bool:
        if digest not in verified:
            path = store.blobs.path(digest)
            actual, size = file_digest(path) if path.is_file() else ("", 0)
            verified[digest] = actual == digest
            report.blobs += path.is_file()
            report.verified_bytes += size if verified[digest] else 0
        return verified[digest]

    for entry in list(index.models):
        names = ", ".join(entry.tags) or entry.id
        broken = [d for d in entry.files if not blob_ok(d)]
        manifest = store.layout.manifest(entry.id)
        manifest_ok = manifest.is_file() and file_digest(manifest)[0] == entry.id  # in chunks: it may be huge
        if broken or not manifest_ok:
            what = f"blobs missing or corrupt: {', '.join(broken)}" if broken else "manifest missing or corrupt"
            problems.append(f"model {names}: {what}" + ("; removed it, pull it again" if repair else ""))
            if repair:
                report.removed_models.append(entry.id)
                index.remove(entry.id)
                store.manifests.remove(entry.id)
                remove_bundle(store.layout, entry.id)
                store.remove_unpinned_blobs(broken)
            continue
        if store.layout.bundle(entry.id).exists() and not bundle_is_intact(store.layout, store.model_for(entry)):
            problems.append(f"model {names}: runtime bundle damaged" + ("; removed it" if repair else ""))
            if repair:
                remove_bundle(store.layout, entry.id)
    if repair:
        store.write_index(index)
    problems += _leftovers(store, index, repair)
    return report


def _older_than(path: Path, seconds: float) -> bool:
    """Whether `path` was last written over `seconds` ago (False once its writer renamed or removed it)."""
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def _leftovers(store: Store, index: Index, repair: bool) -> list[str]:
    problems = []
    used = index.blobs_in_use()
    ids = {m.id for m in index.models}
    for digest in sorted(set(store.blobs.digests()) - used - store.pinned_digests()):
        if repair and not store.remove_unpinned_blobs([digest]):
            continue  # a pull or load pinned it since: its model is recorded in a moment
        problems.append(f"blob {digest} is used by no model" + ("; deleted it" if repair else ""))
    for model_id in sorted(set(store.manifests.ids()) - ids):
        problems.append(f"manifest {model_id} belongs to no listed model" + ("; deleted it" if repair else ""))
        if repair:
            store.manifests.remove(model_id)
    for path in store.blobs.incomplete_files():
        if _older_than(path, STALE_INCOMPLETE_SECONDS):
            problems.append(f"partial download {path.name} is over a week old" + ("; deleted it" if repair else ""))
            if repair:
                path.unlink(missing_ok=True)
    for path in store.layout.temp_files():
        if _older_than(path, STALE_TEMP_SECONDS):
            problems.append(f"{path.name} was left by an interrupted write" + ("; deleted it" if repair else ""))
            if repair:
                path.unlink(missing_ok=True)
    if store.layout.bundles_dir.is_dir():
        for bundle in sorted(store.layout.bundles_dir.iterdir()):
            if f"sha256:{bundle.name}" not in ids:
                problems.append(f"bundle {bundle.name} belongs to no listed model" + ("; deleted it" if repair else ""))
                if repair:
                    shutil.rmtree(bundle, ignore_errors=True)
    try:
        json.loads(store.layout.layout_file.read_bytes())
    except (FileNotFoundError, ValueError):
        problems.append("layout.json missing or damaged" + ("; rewrote it" if repair else ""))
        if repair:
            store.layout.layout_file.unlink(missing_ok=True)
            store.layout.ensure()
    try:
        read_last_used(store)
    except StoreCorruptError:
        fix = "; deleted it (every model counts as used when it was pulled)" if repair else ""
        problems.append(f"{store.layout.usage_file.name}, the record of when models were used, is damaged{fix}")
        if repair:
            store.layout.usage_file.unlink(missing_ok=True)
    return problems
