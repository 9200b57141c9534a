"""When models were last used (the store's `last-used.json`), which went unused, what removing them frees,
and what the integrity check reports beside its problems."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from docker_model.distribution import Store, package
from docker_model.distribution.store import usage
from tests.fixtures.gguf_files import write_gguf

HOUR = 3600.0


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "models")
    for seed, name in enumerate(("a", "b")):
        store.write_artifact(package(write_gguf(tmp_path / f"{name}.gguf", seed)), [name])
    return store


def test_storing_a_model_records_its_use_in_a_file_of_its_own(store: Store) -> None:
    recorded = usage.read_last_used(store)
    assert set(recorded) == {store.get("a").id, store.get("b").id}
    assert all(time.time() - when < HOUR for when in recorded.values())
    index = json.loads(store.layout.index_file.read_bytes())
    assert set(index) == {"models"} and all(set(m) == {"id", "tags", "files"} for m in index["models"])


def test_models_unused_for_long_enough_are_found_oldest_first_and_loaded_ones_kept(store: Store) -> None:
    a, b = store.get("a"), store.get("b")
    now = time.time()
    store.record_use({a.id: now - 3 * HOUR})  # an older record never replaces a newer one
    assert usage.read_last_used(store)[a.id] > now - HOUR
    store.layout.usage_file.write_text(json.dumps({"models": {a.id: "2020-01-01T00:00:00Z"}}))
    os.utime(store.layout.manifest(b.id), (now - 2 * HOUR, now - 2 * HOUR))  # no record: pulled 2 hours ago

    assert [u.model.id for u in usage.unused_models(store, HOUR)] == [a.id, b.id]
    assert [u.model.id for u in usage.unused_models(store, 3 * HOUR)] == [a.id]
    assert [u.model.id for u in usage.unused_models(store, HOUR, keep={a.id})] == [b.id]
    found = {u.model.id: u.last_used for u in usage.unused_models(store, HOUR)}
    assert found == {a.id: 1577836800.0, b.id: pytest.approx(now - 2 * HOUR)}


def test_what_removing_models_frees_leaves_out_blobs_others_use(store: Store, tmp_path: Path) -> None:
    a = store.get("a")
    shared = store.write_artifact(package(write_gguf(tmp_path / "a.gguf", 0), context_size=512), ["a-too"])
    assert shared.layers[0].digest == a.layers[0].digest
    config_a = store.blobs.size(a.config_digest)
    assert usage.reclaimable(store, [a.id]) == config_a  # its GGUF layer stays for a-too
    assert usage.reclaimable(store, [a.id, shared.id]) == config_a + store.blobs.size(shared.config_digest) + a.size


def test_records_of_removed_models_are_dropped_and_purge_removes_the_file(store: Store) -> None:
    a = store.get("a")
    store.remove("a")
    store.record_use({})
    assert a.id not in usage.read_last_used(store)
    store.purge()
    assert not store.layout.usage_file.exists()


def test_the_check_counts_what_it_verified_and_repairs_a_damaged_record(store: Store) -> None:
    report = store.check_report()
    files = {d for m in store.list() for d in [m.config_digest, *(la.digest for la in m.layers)]}
    assert (report.models, report.blobs, report.problems) == (2, len(files), [])
    assert report.verified_bytes == sum(store.blobs.size(d) for d in files)

    store.layout.usage_file.write_text("{not json")
    assert store.check() == ["last-used.json, the record of when models were used, is damaged"]
    with pytest.raises(Exception, match="docker model check --repair"):
        usage.unused_models(store, HOUR)
    store.check(repair=True)
    assert store.check() == []
