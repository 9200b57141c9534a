"""Model archives as `docker model save` writes them (an OCI image layout tarball) and `load` reads them:
the layout's files, a round trip into another store, and hostile or damaged archives refused with the
store left exactly as it was."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from docker_model.distribution import DistributionError, Store, StoreCorruptError, UnsupportedFormatError, package
from docker_model.distribution.errors import ArchiveDigestError
from docker_model.distribution.model import Model
from docker_model.distribution.store import oci_layout
from tests.fixtures.gguf_files import write_gguf


def saved(store: Store, name: str) -> bytes:
    """The archive of model `name`, as the export route streams it."""
    model = store.get(name)
    tags = [t for t in model.tags if t.endswith(f"/{name}:latest")]
    archive = oci_layout.export_model(store.blobs, model, store.manifests.read(model.id), tags)
    data = b"".join(archive.chunks())
    assert len(data) == archive.size  # the Content-Length the route announces
    return data


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() if m.isfile() else b"" for m in tar}  # type: ignore[union-attr]


def rebuilt(files: dict[str, bytes], *extra: tarfile.TarInfo) -> io.BytesIO:
    """A tar of `files` (in order), then `extra` members (links, devices) with no data."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    buffer.seek(0)
    return buffer


def contents(root: Path) -> dict[str, bytes]:
    """Every file under a store root and its bytes (the lock file aside): to prove a refusal changed nothing."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def source(tmp_path: Path) -> tuple[Store, Model]:
    store = Store(tmp_path / "source")
    model = store.write_artifact(package(write_gguf(tmp_path / "m.gguf", seed=1)), ["ai/tiny", "ai/other"])
    return store, model


@pytest.fixture
def target(tmp_path: Path) -> Store:
    """A store that already holds a model: a refused archive must leave it byte for byte as it was."""
    store = Store(tmp_path / "target")
    store.write_artifact(package(write_gguf(tmp_path / "kept.gguf", seed=2)), ["ai/kept"])
    return store


def test_a_saved_model_is_an_oci_image_layout_that_dmr_load_reads_too(source: tuple[Store, Model]) -> None:
    store, model = source
    files = members(saved(store, "tiny"))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [descriptor] = index["manifests"]
    assert descriptor["digest"] == model.id
    assert descriptor["annotations"] == {"org.opencontainers.image.ref.name": "docker.io/ai/tiny:latest"}
    raw = store.manifests.read(model.id)
    assert descriptor["size"] == len(raw)
    hexes = {
        digest.removeprefix("sha256:")
        for digest in [model.id, model.config_digest, *(la.digest for la in model.layers)]
    }
    assert {name for name in files if name.startswith("blobs/sha256/") and name != "blobs/sha256/"} == {
        f"blobs/sha256/{h}" for h in hexes
    }
    assert files[f"blobs/sha256/{model.id.removeprefix('sha256:')}"] == raw
    # Docker Model Runner's load reads `manifest.json` and the blobs, and skips the layout's other files.
    assert files["manifest.json"] == raw
    assert list(files)[-1] == "manifest.json"


def test_a_saved_model_loads_into_another_store_whole(source: tuple[Store, Model], target: Store) -> None:
    store, model = source
    loaded = target.load(io.BytesIO(saved(store, "tiny")))
    assert (loaded.id, loaded.tags) == (model.id, ["docker.io/ai/tiny:latest"])
    assert sorted(t for m in target.list() for t in m.tags) == ["docker.io/ai/kept:latest", "docker.io/ai/tiny:latest"]
    # The manifest lives under manifests/, not as a blob: nothing dangles.
    assert target.check() == []
    assert model.id.removeprefix("sha256:") not in {d.removeprefix("sha256:") for d in target.blobs.digests()}


def test_a_model_saved_by_id_keeps_all_its_tags_and_one_without_tags_loads_untagged(
    source: tuple[Store, Model], tmp_path: Path
) -> None:
    store, model = source
    raw = store.manifests.read(model.id)
    for tags, expected in ((model.tags, sorted(model.tags)), ([], [])):
        archive = oci_layout.export_model(store.blobs, model, raw, tags)
        fresh = Store(tmp_path / f"fresh-{len(tags)}")
        assert sorted(fresh.load(io.BytesIO(b"".join(archive.chunks()))).tags) == expected


def test_an_archive_naming_a_bare_tag_needs_a_name(source: tuple[Store, Model], target: Store) -> None:
    store, _ = source
    files = members(saved(store, "tiny"))
    index = json.loads(files["index.json"])
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "v1"}  # as skopeo writes it
    files["index.json"] = json.dumps(index).encode()
    before = contents(target.root)
    with pytest.raises(DistributionError, match=r"names its model 'v1', a tag without a repository: .*--tag"):
        target.load(rebuilt(files))
    assert contents(target.root) == before
    assert target.load(rebuilt(files), ["ai/named:v1"]).tags == ["docker.io/ai/named:v1"]


def hostile(files: dict[str, bytes], model: Model) -> list[tuple[str, io.BytesIO, type[Exception], str]]:
    layer = model.layers[0].digest.removeprefix("sha256:")
    tampered = dict(files)
    tampered[f"blobs/sha256/{layer}"] = files[f"blobs/sha256/{layer}"][:-1] + b"X"
    symlink = tarfile.TarInfo("blobs/sha256/" + "e" * 64)
    symlink.type, symlink.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
    hardlink = tarfile.TarInfo("blobs/sha256/" + "f" * 64)
    hardlink.type, hardlink.linkname = tarfile.LNKTYPE, "/etc/shadow"
    whole = rebuilt(files).getvalue()
    cut = whole.index(files[f"blobs/sha256/{layer}"][:64]) + 1000  # in the middle of the layer
    two_models = dict(files)
    index = json.loads(files["index.json"])
    index["manifests"].append({**index["manifests"][0], "digest": "sha256:" + "0" * 64})
    two_models["index.json"] = json.dumps(index).encode()
    disagreeing = {**files, "manifest.json": files["manifest.json"] + b" "}
    return [
        ("traversal", rebuilt({**files, "../../outside": b"x"}), UnsupportedFormatError, "member outside it"),
        ("absolute", rebuilt({**files, "/etc/cron.d/x": b"x"}), UnsupportedFormatError, "member outside it"),
        ("symlink out", rebuilt(files, symlink), UnsupportedFormatError, "is a symbolic link"),
        ("hard link out", rebuilt(files, hardlink), UnsupportedFormatError, "is a hard link"),
        ("digest mismatch", rebuilt(tampered), ArchiveDigestError, "does not match its digest"),
        ("truncated", io.BytesIO(whole[:cut]), DistributionError, "not a readable, uncompressed tar stream"),
        ("two models", rebuilt(two_models), UnsupportedFormatError, "holds 2 models"),
        ("manifests disagree", rebuilt(disagreeing), UnsupportedFormatError, "is not the manifest its index.json"),
        (
            "no layout file",
            rebuilt({k: v for k, v in files.items() if k != "oci-layout"}),
            UnsupportedFormatError,
            "not an OCI image layout",
        ),
        ("no layer", rebuilt({k: v for k, v in files.items() if layer not in k}), DistributionError, "lacks blobs"),
    ]


@pytest.mark.parametrize(
    "case",
    [
        "traversal",
        "absolute",
        "symlink out",
        "hard link out",
        "digest mismatch",
        "truncated",
        "two models",
        "manifests disagree",
        "no layout file",
        "no layer",
    ],
)
def test_a_hostile_or_damaged_archive_is_refused_and_changes_nothing(
    source: tuple[Store, Model], target: Store, case: str
) -> None:
    store, model = source
    found = {
        name: (archive, error, message)
        for name, archive, error, message in hostile(members(saved(store, "tiny")), model)
    }
    archive, error, message = found[case]
    before = contents(target.root)
    with pytest.raises(error, match=message) as caught:
        target.load(archive)
    assert "\n" not in str(caught.value)
    assert contents(target.root) == before
    assert target.check() == []


def test_an_archive_with_a_blob_the_store_has_is_still_verified(source: tuple[Store, Model], tmp_path: Path) -> None:
    store, model = source
    files = members(saved(store, "tiny"))
    layer = model.layers[0].digest.removeprefix("sha256:")
    files[f"blobs/sha256/{layer}"] = files[f"blobs/sha256/{layer}"][:-1] + b"X"
    with pytest.raises(ArchiveDigestError, match=f"blob sha256:{layer} does not match"):
        store.load(rebuilt(files))
    assert store.check() == []


def test_exporting_a_damaged_blob_fails_before_or_while_it_is_sent(source: tuple[Store, Model]) -> None:
    store, model = source
    raw = store.manifests.read(model.id)
    blob = store.blobs.path(model.layers[0].digest)
    with open(blob, "r+b") as f:  # same size, other bytes: found only as it is read
        f.seek(100)
        f.write(b"\xff\xfe")
    with pytest.raises(StoreCorruptError, match=r"does not match its digest.*docker model check --repair"):
        b"".join(oci_layout.export_model(store.blobs, model, raw, model.tags).chunks())
    blob.unlink()
    with pytest.raises(StoreCorruptError, match=r"is missing.*docker model check --repair"):
        oci_layout.export_model(store.blobs, model, raw, model.tags)
