"""The local store: layout, lookups, tags, delete semantics, bundles, load, integrity check."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from docker_model.distribution import (
    ConflictError,
    DigestMismatchError,
    DistributionError,
    InvalidReferenceError,
    ModelNotFoundError,
    Store,
    package,
    write_model_tar,
)
from docker_model.distribution.artifact import Artifact
from tests.fixtures.gguf_files import write_gguf


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


def tiny_artifact(tmp_path: Path, seed: int) -> Artifact:
    return package(write_gguf(tmp_path / f"m{seed}.gguf", seed=seed))


def test_layout_on_disk(tmp_path: Path, store: Store) -> None:
    assert store.list() == []
    assert not store.root.exists()  # created lazily
    art = tiny_artifact(tmp_path, 1)
    model = store.write_artifact(art, ["smollm2"])

    root = store.root
    assert json.loads((root / "layout.json").read_text()) == {"version": "1.0.0"}
    index = json.loads((root / "models.json").read_text())
    layer_digests = [la.digest for la in art.layers]
    assert index == {
        "models": [
            {"id": art.id, "tags": ["docker.io/ai/smollm2:latest"], "files": [*layer_digests, art.config_digest]}
        ]
    }
    assert (root / "manifests/sha256" / art.id[7:]).read_bytes() == art.manifest_bytes
    for digest in [*layer_digests, art.config_digest]:
        assert (root / "blobs/sha256" / digest[7:]).is_file()
    assert model.id == art.id
    assert model.short_id == art.id[7:19]
    assert model.size == sum(la.size for la in art.layers)
    assert model.config["format"] == "gguf"
    assert model.created > 0
    assert [p.name for p in root.rglob("*.tmp")] == []


def test_lookup_by_every_name_form(tmp_path: Path, store: Store) -> None:
    art = tiny_artifact(tmp_path, 1)
    store.write_artifact(art, ["ai/smollm2:latest"])
    for name in (
        "smollm2",
        "ai/smollm2",
        "docker.io/ai/smollm2:latest",
        art.id,
        art.id[7:19],
        art.id[:19],
        f"smollm2@{art.id}",
    ):
        assert store.get(name).id == art.id, name
    with pytest.raises(ModelNotFoundError, match="model not found: gemma3"):
        store.get("gemma3")
    with pytest.raises(InvalidReferenceError):
        store.get("Bad Name")


def test_tag_moves_between_models(tmp_path: Path, store: Store) -> None:
    one = store.write_artifact(tiny_artifact(tmp_path, 1), ["one"])
    two = store.write_artifact(tiny_artifact(tmp_path, 2), ["two"])
    store.tag("one", "shared:v1")
    assert store.get("shared:v1").id == one.id
    store.tag(two.short_id, "shared:v1")
    assert store.get("shared:v1").id == two.id
    assert store.get("one").tags == ["docker.io/ai/one:latest"]
    with pytest.raises(InvalidReferenceError, match="digest"):
        store.tag("one", f"x@{one.id}")
    with pytest.raises(ModelNotFoundError):
        store.tag("nothing", "x")


def test_delete_semantics(tmp_path: Path, store: Store) -> None:
    art = tiny_artifact(tmp_path, 1)
    model = store.write_artifact(art, ["a", "b"])
    with pytest.raises(ConflictError, match="several tags"):
        store.remove(model.short_id)
    assert store.remove("a") == [("Untagged", "docker.io/ai/a:latest")]
    assert store.get("b").id == model.id
    assert store.remove("b") == [("Untagged", "docker.io/ai/b:latest"), ("Deleted", model.id)]
    assert store.list() == []
    assert list(store.blobs.digests()) == []
    assert not store.layout.manifest(model.id).exists()

    model = store.write_artifact(art, ["a", "b"])
    assert store.remove(model.id, force=True) == [
        ("Untagged", "docker.io/ai/a:latest"),
        ("Untagged", "docker.io/ai/b:latest"),
        ("Deleted", model.id),
    ]
    with pytest.raises(ModelNotFoundError):
        store.remove("a")


def test_delete_keeps_blobs_another_model_uses(tmp_path: Path, store: Store) -> None:
    gguf = write_gguf(tmp_path / "shared.gguf")
    license_file = tmp_path / "LICENSE"
    license_file.write_text("MIT")
    plain = store.write_artifact(package(gguf), ["plain"])
    licensed = store.write_artifact(package(gguf, licenses=[license_file]), ["licensed"])
    gguf_digest = plain.layers[0].digest
    assert licensed.layers[0].digest == gguf_digest
    store.remove("plain")
    assert store.blobs.has(gguf_digest)
    assert store.check() == []
    store.remove("licensed")
    assert not store.blobs.has(gguf_digest)


def test_untagged_model_is_listed_and_deleted_by_id(tmp_path: Path, store: Store) -> None:
    model = store.write_artifact(tiny_artifact(tmp_path, 1), [])
    assert [m.tags for m in store.list()] == [[]]
    assert store.remove(model.short_id) == [("Deleted", model.id)]


def test_any_unique_id_prefix_names_a_model(tmp_path: Path, store: Store) -> None:
    models = [store.write_artifact(tiny_artifact(tmp_path, seed), [f"m{seed}"]) for seed in range(17)]
    model = models[0]
    assert store.get(model.id[7:19]).id == model.id
    shortest = next(n for n in range(1, 65) if sum(m.id[7:].startswith(model.id[7 : 7 + n]) for m in models) == 1)
    assert store.get(model.id[7 : 7 + shortest]).id == model.id
    digit = next(d for d in "0123456789abcdef" if sum(m.id[7] == d for m in models) > 1)  # 17 models, 16 digits
    with pytest.raises(ConflictError, match=f"model ID prefix '{digit}' is ambiguous: it starts ") as ambiguous:
        store.get(digit)
    assert all(m.id[7:19] in str(ambiguous.value) for m in models if m.id[7] == digit)
    named = store.write_artifact(tiny_artifact(tmp_path, 99), [model.id[7:11]])  # a model named like a prefix
    assert store.get(model.id[7:11]).id == named.id  # a name comes before an ID prefix


def test_bundle_hard_links_blobs(tmp_path: Path, store: Store) -> None:
    template = tmp_path / "t.jinja"
    template.write_text("{{ x }}")
    projector = write_gguf(tmp_path / "p.mmproj", seed=9, architecture="clip")
    art = package(write_gguf(tmp_path / "m.gguf"), chat_template=template, mmproj=projector)
    model = store.write_artifact(art, ["m"])
    bundle = store.bundle(model)
    root = store.layout.bundle(model.id)
    assert bundle.root == root
    assert bundle.gguf_path == root / "model/model.gguf"
    assert bundle.mmproj_path == root / "model/model.mmproj"
    assert bundle.template_path == root / "model/template.jinja"
    assert json.loads(bundle.config_path.read_text()) == model.config
    assert os.path.samefile(bundle.gguf_path, store.blobs.path(model.layers[0].digest))
    assert bundle.template_path.read_text() == "{{ x }}"
    assert store.bundle(model) == bundle  # reused

    bundle.gguf_path.unlink()  # a damaged bundle is rebuilt
    assert store.bundle(model).gguf_path.is_file()


def test_sharded_bundle_names(store: Store, sharded_gguf: list[Path]) -> None:
    model = store.write_artifact(package(sharded_gguf[0]), ["sharded"])
    bundle = store.bundle(model)
    assert sorted(p.name for p in (bundle.root / "model").iterdir()) == [
        "model-00001-of-00003.gguf",
        "model-00002-of-00003.gguf",
        "model-00003-of-00003.gguf",
    ]
    assert bundle.gguf_path.name == "model-00001-of-00003.gguf"
    for shard, layer in zip(sorted((bundle.root / "model").iterdir()), model.layers, strict=True):
        assert shard.read_bytes() == store.blobs.path(layer.digest).read_bytes()


def model_tar(art: Artifact) -> io.BytesIO:
    buffer = io.BytesIO()
    write_model_tar(art, buffer)
    buffer.seek(0)
    return buffer


def test_load_tar_stream(tmp_path: Path, store: Store) -> None:
    art = tiny_artifact(tmp_path, 5)
    model = store.load(model_tar(art), tags=["loaded:v1"])
    assert model.id == art.id
    assert store.get("loaded:v1").id == art.id
    assert store.blobs.path(art.layers[0].digest).read_bytes() == art.layers[0].source.read_bytes()


def test_load_rejects_tampered_blob(tmp_path: Path, store: Store) -> None:
    art = tiny_artifact(tmp_path, 5)
    source = art.layers[0].source
    source.write_bytes(source.read_bytes()[:-1] + b"X")  # changed after packaging: the digest no longer fits
    with pytest.raises(DigestMismatchError):
        store.load(model_tar(art))
    assert store.list() == []
    assert list(store.blobs.digests()) == []  # verified blobs before the bad one are removed again


def test_load_without_manifest(store: Store) -> None:
    buffer = io.BytesIO()
    tarfile.open(fileobj=buffer, mode="w").close()
    buffer.seek(0)
    with pytest.raises(DistributionError, match=r"no manifest\.json"):
        store.load(buffer)


def test_integrity_check_finds_and_repairs(tmp_path: Path, store: Store) -> None:
    good = store.write_artifact(tiny_artifact(tmp_path, 1), ["good"])
    bad = store.write_artifact(tiny_artifact(tmp_path, 2), ["bad"])
    assert store.check() == []
    store.bundle(good)

    bad_blob = store.blobs.path(bad.layers[0].digest)
    bad_blob.write_bytes(b"corrupted")
    orphan = store.layout.blob("sha256:" + "0" * 64)
    orphan.write_bytes(b"orphan")
    (store.bundle(good).root / "model/model.gguf").unlink()

    problems = store.check()
    assert any("docker.io/ai/bad:latest" in p and "corrupt" in p for p in problems)
    assert any("0" * 64 in p and "used by no model" in p for p in problems)
    assert any("bundle damaged" in p for p in problems)
    assert len(store.list()) == 2  # a check without repair changes nothing

    store.check(repair=True)
    assert store.check() == []
    assert [m.tags for m in store.list()] == [["docker.io/ai/good:latest"]]
    assert not bad_blob.exists() and not orphan.exists()


def test_purge(tmp_path: Path, store: Store) -> None:
    store.write_artifact(tiny_artifact(tmp_path, 1), ["x"])
    store.bundle(store.get("x"))
    (store.layout.incomplete("sha256:" + "ab" * 32)).write_bytes(b"partial")
    store.purge()
    assert store.list() == []
    assert store.disk_usage() == 0
    assert sorted(p.name for p in store.root.iterdir()) == [".lock"]
    not_a_store = tmp_path / "home"
    not_a_store.mkdir()
    (not_a_store / "precious.txt").write_text("keep")
    with pytest.raises(DistributionError, match="not a model store"):
        Store(not_a_store).purge()
    assert (not_a_store / "precious.txt").exists()


def test_disk_usage_counts_blobs(tmp_path: Path, store: Store) -> None:
    art = tiny_artifact(tmp_path, 1)
    store.write_artifact(art, ["x"])
    assert store.disk_usage() == sum(la.size for la in art.layers) + len(art.config_bytes)
    store.layout.incomplete("sha256:" + "ab" * 32).write_bytes(b"x" * 1000)  # a pull that stopped half-way
    assert store.disk_usage() == sum(la.size for la in art.layers) + len(art.config_bytes) + 1000


def test_purge_keeps_files_the_store_did_not_write(tmp_path: Path, store: Store) -> None:
    store.root.mkdir(parents=True, exist_ok=True)
    own_gguf = store.root / "my-model.gguf"
    own_gguf.write_bytes(b"mine")
    (store.root / "blobs").mkdir()
    own_in_blobs = store.root / "blobs" / "README"
    own_in_blobs.write_text("mine too")
    store.write_artifact(tiny_artifact(tmp_path, 1), ["x"])
    store.write_artifact(tiny_artifact(tmp_path, 2), ["y"])
    store.purge()
    assert store.list() == []
    assert own_gguf.read_bytes() == b"mine" and own_in_blobs.read_text() == "mine too"
    assert sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*")) == [
        ".lock",
        "blobs",
        "blobs/README",
        "my-model.gguf",
    ]
