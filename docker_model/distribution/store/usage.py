"""When each model was last used, and which models went unused: what `docker model prune` removes.

A model is used when it is pulled or loaded into the store and when it is loaded into memory or unloaded
(its last request). The times live in a sidecar file at the store root, `last-used.json`
(`{"models": {"sha256:<id>": "<RFC 3339>"}}`), so that `models.json` keeps Docker Model Runner's format.
A model with no record there (a store written before, or by Docker Model Runner) counts as used when its
manifest was written, i.e. when it was pulled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from docker_model.distribution.artifact import parse_rfc3339, rfc3339
from docker_model.distribution.errors import StoreCorruptError
from docker_model.distribution.model import Model
from docker_model.files import PRIVATE_FILE, write_json

if TYPE_CHECKING:
    from docker_model.distribution.store import Store


def read_last_used(store: Store) -> dict[str, float]:
    """Model ID -> unix time of its last use, as recorded (StoreCorruptError when the file is damaged)."""
    path = store.layout.usage_file
    try:
        document = json.loads(path.read_bytes())
        return {model_id: parse_rfc3339(text).timestamp() for model_id, text in document["models"].items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise StoreCorruptError(path, f"not a record of when models were used: {error!r}") from None


def record_use(store: Store, uses: dict[str, float]) -> None:
    """Record that the models `uses` names (ID -> unix time) were used then; a later record is kept.

    Records of models no longer in the store are dropped as the file is written; a damaged file is replaced.
    """
    with store.locked():
        try:
            recorded = read_last_used(store)
        except StoreCorruptError:
            recorded = {}
        for model_id, when in uses.items():
            recorded[model_id] = max(when, recorded.get(model_id, 0.0))
        listed = {entry.id for entry in store.read_index().models}
        document = {
            model_id: rfc3339(datetime.fromtimestamp(when, timezone.utc))
            for model_id, when in sorted(recorded.items())
            if model_id in listed
        }
        write_json(store.layout.usage_file, {"models": document}, mode=PRIVATE_FILE)


@dataclass(frozen=True)
class Unused:
    model: Model
    last_used: float  # unix time


def unused_models(store: Store, seconds: float, keep: Collection[str] = (), now: float | None = None) -> list[Unused]:
    """The models not used for `seconds`, least recently used first, except those whose IDs `keep` holds
    (the loaded ones)."""
    now = time.time() if now is None else now
    recorded = read_last_used(store)
    found = []
    for model in store.list():
        if model.id in keep:
            continue
        last_used = recorded.get(model.id)
        if last_used is None:
            try:
                last_used = store.layout.manifest(model.id).stat().st_mtime
            except FileNotFoundError:  # removed meanwhile
                continue
        if now - last_used >= seconds:
            found.append(Unused(model, last_used))
    return sorted(found, key=lambda unused: unused.last_used)


def reclaimable(store: Store, model_ids: Collection[str]) -> int:
    """Bytes that removing these models frees: their blobs that no other model uses, each counted once."""
    index = store.read_index()
    kept = {digest for entry in index.models if entry.id not in model_ids for digest in entry.files}
    going = {digest for entry in index.models if entry.id in model_ids for digest in entry.files} - kept
    total = 0
    for digest in going:
        try:
            total += store.blobs.size(digest)
        except FileNotFoundError:
            continue
    return total
