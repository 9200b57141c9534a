"""What the store keeps while pulls and loads are under way (the blobs they wrote or found present, not yet
recorded: pinned), index tags held by one model each, and the archive's digest error. Pulls through a
registry: tests/distribution/test_pull_in_flight.py."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from docker_model.distribution import DistributionError, Store, package, write_model_tar
from docker_model.distribution.artifact import sha256_digest
from docker_model.distribution.errors import ArchiveDigestError
from docker_model.distribution.store.index import Index, IndexEntry, read_index
from docker_model.distribution.store.tarball import MANIFEST_NAME
from tests.fixtures.gguf_files import write_gguf


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


def test_blobs_an_unfinished_pull_holds_are_no_leftovers_and_survive_repair(store: Store) -> None:
    written = sha256_digest(b"a layer")
    with store.pinned() as pin:
        pin(written)
        store.blobs.write_bytes(written, b"a layer")
        assert store.check() == []
        assert store.check(repair=True) == [] and store.blobs.has(written)
    assert store.check() == [f"blob {written} is used by no model"]  # once nothing holds it, it is one


def test_pins_are_counted_so_that_the_last_holder_releases(store: Store) -> None:
    digest = sha256_digest(b"shared")
    with store.pinned([digest]) as pin:
        pin(digest)  # pinned twice by one holder
        with store.pinned([digest]):
            pass
        assert digest in store.pinned_digests()
    assert store.pinned_digests() == frozenset()


def test_removing_a_model_keeps_the_blobs_a_pull_holds(store: Store, tmp_path: Path) -> None:
    """v2, which shares v1's GGUF, is pulled while v1 is removed (`rm`, `prune`): the GGUF the pull found
    present stays for it."""
    gguf = write_gguf(tmp_path / "m.gguf", seed=1)
    v1 = store.write_artifact(package(gguf), ["ai/m:v1"])
    shared = v1.layers[0].digest
    with store.pinned([shared]):
        store.remove("ai/m:v1")
        assert store.blobs.has(shared) and not store.blobs.has(v1.config_digest)
        v2 = store.write_artifact(package(gguf, context_size=512), ["ai/m:v2"])
    assert v2.layers[0].digest == shared and store.check() == []


def test_tagging_a_model_removed_meanwhile_says_so(store: Store, tmp_path: Path) -> None:
    """A pull that finds its model stored only tags it; removed in between, the pull must download it again."""
    model = store.write_artifact(package(write_gguf(tmp_path / "m.gguf")), ["ai/m:v1"])
    assert store.add_tags(model.id, ["ai/m:v2"]) is True
    store.remove(model.id, force=True)
    assert store.add_tags(model.id, ["ai/m:v3"]) is False and store.list() == []


def model_archive(gguf: Path, context_size: int | None = None) -> bytes:
    sink = io.BytesIO()
    write_model_tar(package(gguf, context_size=context_size), sink)
    return sink.getvalue()


def test_a_load_survives_a_repair_and_a_removal_before_it_records(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between storing an archive's blobs and recording its model, another request removes the model whose
    GGUF the archive shares and runs `check --repair`: the load still records its model."""
    gguf = write_gguf(tmp_path / "m.gguf", seed=3)
    store.write_artifact(package(gguf), ["ai/old"])
    problems: list[list[str]] = []
    record = store.record

    def meanwhile_then_record(*args: Any, **kwargs: Any) -> Any:
        store.remove("ai/old")
        problems.append(store.check(repair=True))
        return record(*args, **kwargs)

    monkeypatch.setattr(store, "record", meanwhile_then_record)
    model = store.load(io.BytesIO(model_archive(gguf, context_size=1024)), ["ai/new"])
    assert problems == [[]]  # nothing the load holds counted as left over
    assert model.tags == ["docker.io/ai/new:latest"] and store.check() == []


def without_manifest(archive: bytes) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive)) as source, tarfile.open(fileobj=sink, mode="w") as copy:
        for member in source.getmembers():
            if member.name != MANIFEST_NAME:
                copy.addfile(member, source.extractfile(member))
    return sink.getvalue()


def test_a_refused_load_keeps_a_blob_another_load_holds(store: Store, tmp_path: Path) -> None:
    gguf = write_gguf(tmp_path / "m.gguf", seed=4)
    archive = model_archive(gguf)
    layer = package(gguf).layers[0].digest
    with store.pinned([layer]):  # another load stores the same GGUF, and records its model later
        with pytest.raises(DistributionError, match=f"has no {MANIFEST_NAME}"):
            store.load(io.BytesIO(without_manifest(archive)), ["ai/refused"])
        assert store.blobs.has(layer)
    assert store.check() == [f"blob {layer} is used by no model"]
    store.load(io.BytesIO(archive), ["ai/whole"])
    assert store.check() == []


def test_a_tag_migrated_onto_two_models_stays_with_the_one_that_had_it(tmp_path: Path) -> None:
    """`hf.co/...` reads as `huggingface.co/...`: a store with both forms on two models gives the tag to the
    model that had today's form, or to the first, never to both."""
    path = tmp_path / "models.json"
    models = [
        {"id": "sha256:a", "tags": ["hf.co/org/repo:Q4_K_M", "hf.co/org/a:latest"], "files": []},
        {"id": "sha256:b", "tags": ["huggingface.co/org/repo:Q4_K_M"], "files": []},
        {"id": "sha256:c", "tags": ["hf.co/org/a:latest", "hf.co/org/a:latest"], "files": []},
    ]
    path.write_text(json.dumps({"models": models}))
    assert [entry.tags for entry in read_index(path).models] == [
        ["huggingface.co/org/a:latest"],
        ["huggingface.co/org/repo:Q4_K_M"],
        [],
    ]


def test_a_tag_given_again_is_held_once() -> None:
    index = Index([IndexEntry("sha256:a", ["t"]), IndexEntry("sha256:b", ["t"])])
    index.tag("sha256:b", "t")
    index.tag("sha256:b", "t")
    assert [entry.tags for entry in index.models] == [[], ["t"]]
    assert index.untag("t") is index.models[1] and index.with_tag("t") is None


def test_an_archive_digest_error_is_a_digest_mismatch_in_its_own_words() -> None:
    error = ArchiveDigestError("sha256:a", "sha256:b")
    assert (error.expected, error.actual) == ("sha256:a", "sha256:b")
    assert str(error).startswith("the model archive's blob sha256:a does not match its digest (got sha256:b)")
