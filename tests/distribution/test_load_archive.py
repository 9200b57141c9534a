"""Model archives (`POST /models/load`): only files and folders inside the archive, manifests, configs and
headers within their limits, and a body no bigger than the store has room for."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import re
import shutil
import tarfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from docker_model.distribution import DigestMismatchError, DistributionError, Store, UnsupportedFormatError, package
from docker_model.distribution.artifact import GGUF, MAX_MANIFEST_BYTES, Artifact, build_artifact
from docker_model.distribution.packaging import layer_from_file, model_config
from docker_model.distribution.store.tarball import MAX_TAR_HEADER_BYTES, write_model_tar
from tests.fixtures.disks import tmpfs
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv, direct_runner

MIB = 1 << 20


@pytest.fixture
def art(tmp_path: Path) -> Artifact:
    return package(write_gguf(tmp_path / "m.gguf"))


def archive(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.GNU_FORMAT) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    buffer.seek(0)
    return buffer


def member(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def model_tar(art: Artifact) -> bytes:
    buffer = io.BytesIO()
    write_model_tar(art, buffer)
    return buffer.getvalue()


def assert_nothing_stored(store: Store) -> None:
    assert store.list() == []
    assert list(store.blobs.digests()) == [] and store.blobs.incomplete_files() == []


@pytest.mark.parametrize(
    ("name", "kind", "fields", "problem"),
    [
        ("../../etc/cron.d/x", tarfile.REGTYPE, {}, "has a member outside it: '../../etc/cron.d/x'"),
        ("blobs/sha256/../../../x", tarfile.REGTYPE, {}, "has a member outside it"),
        ("/blobs/sha256/" + "a" * 64, tarfile.REGTYPE, {}, "has a member outside it"),
        ("manifest.json", tarfile.SYMTYPE, {"linkname": "/etc/passwd"}, "'manifest.json' is a symbolic link"),
        ("blobs/sha256/" + "b" * 64, tarfile.LNKTYPE, {"linkname": "/etc/shadow"}, "is a hard link"),
        ("blobs/sha256/" + "c" * 64, tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}, "is a device"),
        ("blobs/sha256/" + "d" * 64, tarfile.BLKTYPE, {"devmajor": 8, "devminor": 0}, "is a device"),
        ("fifo", tarfile.FIFOTYPE, {}, "is a FIFO"),
    ],
)
def test_members_outside_the_archive_links_and_devices_are_refused(
    tmp_path: Path, name: str, kind: bytes, fields: dict[str, object], problem: str
) -> None:
    store = Store(tmp_path / "models")
    with pytest.raises(UnsupportedFormatError, match="the model archive") as caught:
        store.load(archive((member(name, kind, **fields), b"x")))
    assert problem in str(caught.value) and "packaged for Docker Model Runner" in str(caught.value)
    assert_nothing_stored(store)


def test_a_blob_that_does_not_match_its_name_leaves_nothing(tmp_path: Path, art: Artifact) -> None:
    store = Store(tmp_path / "models")
    layer = art.layers[0]
    assert layer.source is not None
    tampered = layer.source.read_bytes()[:-1] + b"X"
    name = f"blobs/sha256/{layer.digest.removeprefix('sha256:')}"
    with pytest.raises(DigestMismatchError):
        store.load(archive((member(name), tampered), (member("manifest.json"), art.manifest_bytes)))
    assert_nothing_stored(store)
    assert store.check() == []


def test_a_manifest_over_its_limit_is_not_read(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    with pytest.raises(UnsupportedFormatError, match="over the 4 MiB limit"):
        store.load(archive((member("manifest.json"), b" " * (MAX_MANIFEST_BYTES + 1))))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m["layers"][0].update(size="12"), "descriptor size '12' of sha256:"),
        (lambda m: m["config"].update(size=-1), "descriptor size -1 of sha256:"),
        (lambda m: m["layers"][0].update(size=True), "descriptor size True of sha256:"),
        (lambda m: m.update(layers={"not": "a list"}), "are not descriptors"),
        (lambda m: m.update(config=[]), "are not descriptors"),
    ],
)
def test_a_manifest_whose_descriptors_are_not_descriptors_is_refused(
    tmp_path: Path, art: Artifact, change: Callable[[dict[str, Any]], None], problem: str
) -> None:
    manifest = json.loads(art.manifest_bytes)
    change(manifest)
    store = Store(tmp_path / "models")
    with pytest.raises(UnsupportedFormatError, match=re.escape(problem)):
        store.load(archive((member("manifest.json"), json.dumps(manifest).encode())))
    assert store.list() == []


def test_a_config_over_its_limit_is_refused(tmp_path: Path) -> None:
    gguf = write_gguf(tmp_path / "m.gguf")
    layers = [layer_from_file(gguf, GGUF)]
    config = {**model_config([gguf]), "padding": "x" * (4 * MIB)}
    big = build_artifact(config, layers, datetime.now(timezone.utc))
    store = Store(tmp_path / "models")
    with pytest.raises(UnsupportedFormatError, match=r"the model config is \d+ bytes, over the 4 MiB limit"):
        store.load(io.BytesIO(model_tar(big)))
    assert store.list() == []


def test_a_header_tarfile_would_hold_in_memory_is_refused_past_its_limit(tmp_path: Path) -> None:
    huge = member("notes.txt", pax_headers={"comment": "x" * (MAX_TAR_HEADER_BYTES + 1)})
    with pytest.raises(UnsupportedFormatError, match="header, over the 1 MiB limit"):
        Store(tmp_path / "models").load(archive((huge, b"x"), fmt=tarfile.PAX_FORMAT))


def test_a_compressed_archive_is_refused(tmp_path: Path, art: Artifact) -> None:
    with pytest.raises(DistributionError, match="not a readable, uncompressed tar stream"):
        Store(tmp_path / "models").load(io.BytesIO(gzip.compress(model_tar(art))))


def test_folders_and_other_files_are_skipped(tmp_path: Path, art: Artifact) -> None:
    layer = art.layers[0]
    assert layer.source is not None
    store = Store(tmp_path / "models")
    loaded = store.load(
        archive(
            (member("./blobs/", tarfile.DIRTYPE), b""),
            (member("./README"), b"not a blob"),
            (member(f"./blobs/sha256/{art.config_digest.removeprefix('sha256:')}"), art.config_bytes),
            (member(f"blobs/sha256/{layer.digest.removeprefix('sha256:')}"), layer.source.read_bytes()),
            (member("manifest.json"), art.manifest_bytes),
        )
    )
    assert loaded.id == art.id
    assert sorted(store.blobs.digests()) == sorted([art.config_digest, layer.digest])
    assert store.check() == []


def post_streamed(env: RunnerEnv, chunks: int) -> tuple[int, str]:
    """POST /models/load with a body of `chunks` MiB sent in chunks, declaring no size (as any client may);
    the answer, which may come before the whole body is sent."""
    connection = http.client.HTTPConnection("127.0.0.1", env.port, timeout=60)
    try:
        try:
            body = (b"\0" * MIB for _ in range(chunks))
            connection.request("POST", "/models/load?tag=big", body=body, encode_chunked=True)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end: the answer is waiting
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.integration
def test_a_load_past_the_room_in_the_store_is_refused_as_it_streams(tmp_path: Path, art: Artifact) -> None:
    with tmpfs(tmp_path / "disk", "8m") as disk:
        env = RunnerEnv(free_port(), disk / "models", tmp_path / "state")
        with direct_runner(env):
            loaded = requests.post(f"{env.base_url}/models/load", params={"tag": "tiny"}, data=model_tar(art))
            assert loaded.status_code == 201, loaded.text
            free = shutil.disk_usage(disk).free

            status, body = post_streamed(env, chunks=6)  # 6 MiB: more than half of the free space
            message = json.loads(body)["error"]["message"]
            assert status == 507
            assert message.startswith(f"the model archive is larger than the store {env.models_path} has room for")
            assert message.endswith("free some, or move MODELS_PATH") and "\n" not in message
            assert shutil.disk_usage(disk).free >= free - 64 * 1024  # the spool is gone
            store = Store(env.models_path)
            assert [m.id for m in store.list()] == [art.id]
            assert store.check() == []
