"""A registry behind a faulty network (http_proxy.py's faults), and a push killed with SIGKILL.

Resets, 5xx answers and stalls are retried (a blob resumes where it stopped); a blob longer than
announced and a manifest that does not match its digest are one-line errors; and whatever happens,
nothing enters the store under a digest its content does not have.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from docker_model.distribution import (
    DigestMismatchError,
    RegistryClient,
    RegistryError,
    RegistryUnreachableError,
    Store,
    package,
)
from docker_model.distribution.artifact import Artifact
from docker_model.distribution.errors import AnswerTooLargeError
from tests.distribution.http_proxy import CountingProxy, Fault
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.integration
MIB = 1 << 20
MANIFEST = r"^GET /v2/ai/big/manifests/"
BLOB = r"^GET /v2/ai/big/blobs/"


def publish(tmp_path: Path, registry: RegistryServer, name: str = "big", seed: int = 0) -> Artifact:
    art = package(write_gguf(tmp_path / f"{name}.gguf", seed=seed, padding_bytes=3 * MIB))
    RegistryClient(Store(tmp_path / "src"), docker_config=tmp_path).push_artifact(art, f"{registry.host}/ai/{name}")
    return art


def puller(tmp_path: Path, **options: Any) -> RegistryClient:
    return RegistryClient(Store(tmp_path / "dst"), docker_config=tmp_path, backoff=0.01, **options)


def assert_only_verified(store: Store) -> None:
    """Every blob in the store has the content its name says."""
    for digest in store.blobs.digests():
        assert "sha256:" + hashlib.sha256(store.blobs.path(digest).read_bytes()).hexdigest() == digest
    assert store.check() == []


def assert_nothing_kept(store: Store) -> None:
    assert store.list() == []
    assert list(store.blobs.digests()) == []
    assert all(partial.stat().st_size == 0 for partial in store.blobs.incomplete_files())


def test_resets_and_server_errors_are_retried(tmp_path: Path, registry: RegistryServer, proxy: CountingProxy) -> None:
    art = publish(tmp_path, registry)
    layer = art.layers[0]
    proxy.faults += [
        Fault(MANIFEST, "reset"),  # no answer at all
        Fault(MANIFEST, "status", status=502),
        Fault(f"{BLOB}{layer.digest}", "reset", after=MIB),  # mid-blob
        Fault(f"{BLOB}{layer.digest}", "status", status=500),
    ]
    client = puller(tmp_path)
    assert client.pull(f"{proxy.host}/ai/big").id == art.id
    assert all(fault.times == 0 for fault in proxy.faults)
    # Resumed from what arrived: a reset may drop the last bytes sent before it.
    last_range = [rng for digest, rng, _ in proxy.blob_requests if digest == layer.digest][-1]
    assert last_range is not None and 0 < int(last_range.removeprefix("bytes=").rstrip("-")) <= MIB
    assert_only_verified(client.store)


def test_push_survives_resets_and_server_errors(tmp_path: Path, registry: RegistryServer, proxy: CountingProxy) -> None:
    art = package(write_gguf(tmp_path / "m.gguf", padding_bytes=2 * MIB))
    proxy.faults += [
        Fault(r"^POST /v2/ai/pushed/blobs/uploads/", "status", status=502),
        Fault(r"^PUT /v2/ai/pushed/blobs/uploads/", "reset"),  # after the registry took the body
        Fault(r"^PUT /v2/ai/pushed/manifests/", "status", status=503),
    ]
    RegistryClient(Store(tmp_path / "src"), docker_config=tmp_path, backoff=0.01).push_artifact(
        art, f"{proxy.host}/ai/pushed"
    )
    assert all(fault.times == 0 for fault in proxy.faults)
    assert puller(tmp_path).pull(f"{registry.host}/ai/pushed").id == art.id


def test_errors_that_persist_are_one_line(tmp_path: Path, registry: RegistryServer, proxy: CountingProxy) -> None:
    publish(tmp_path, registry)
    client = puller(tmp_path, attempts=2)
    proxy.faults.append(Fault(MANIFEST, "status", times=2, status=503))
    with pytest.raises(RegistryError, match=rf"^registry {proxy.host} answered 503: server error, 2 attempts$"):
        client.pull(f"{proxy.host}/ai/big")
    proxy.faults.append(Fault(MANIFEST, "reset", times=2))
    with pytest.raises(RegistryUnreachableError, match="connection closed by the server; check the network"):
        client.pull(f"{proxy.host}/ai/big")


def test_a_stalled_blob_times_out_and_resumes(tmp_path: Path, registry: RegistryServer, proxy: CountingProxy) -> None:
    art = publish(tmp_path, registry)
    layer = art.layers[0]
    proxy.faults.append(Fault(f"{BLOB}{layer.digest}", "stall", after=MIB))
    client = puller(tmp_path, timeout=(5.0, 0.5))
    assert client.pull(f"{proxy.host}/ai/big").id == art.id
    assert (layer.digest, f"bytes={MIB}-", 206) in proxy.blob_requests
    assert_only_verified(client.store)


def test_a_registry_that_stays_stalled_is_a_clear_error(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy
) -> None:
    publish(tmp_path, registry)
    proxy.faults.append(Fault(MANIFEST, "stall", times=2))
    with pytest.raises(RegistryUnreachableError, match=rf"^cannot reach registry {proxy.host}: timed out; check"):
        puller(tmp_path, attempts=2, timeout=(5.0, 0.5)).pull(f"{proxy.host}/ai/big")


@pytest.mark.parametrize("announce", [True, False], ids=["in Content-Length", "unannounced"])
def test_a_blob_longer_than_announced_is_refused(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy, announce: bool
) -> None:
    art = publish(tmp_path, registry)
    layer = art.layers[0]
    proxy.faults.append(Fault(f"{BLOB}{layer.digest}", "append", body=b"more", announce=announce))
    client = puller(tmp_path)
    with pytest.raises(AnswerTooLargeError, match=f"blob {layer.digest} is longer than the {layer.size} bytes"):
        client.pull(f"{proxy.host}/ai/big")
    assert_nothing_kept(client.store)


def test_a_manifest_that_does_not_match_its_digest_is_refused(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy
) -> None:
    art = publish(tmp_path, registry)
    other = publish(tmp_path, registry, name="other", seed=1)
    client = puller(tmp_path)
    for reference in (f"{proxy.host}/ai/big", f"{proxy.host}/ai/big@{art.id}"):
        proxy.faults.append(Fault(MANIFEST, "replace", body=other.manifest_bytes))
        with pytest.raises(DigestMismatchError, match=f"expected {art.id}, got {other.id}"):
            client.pull(reference)
        assert_nothing_kept(client.store)


PUSH_SCRIPT = """
import sys, time
from datetime import datetime
from pathlib import Path
from typing import Any
from docker_model.distribution import RegistryClient, Store, package
art = package(Path(sys.argv[1]), created=datetime.fromisoformat(sys.argv[4]))
done = {}
def report(event):
    done[event.layer_digest] = event.current
    print(sum(done.values()), flush=True)
    time.sleep(0.02)  # paced, so that the kill lands mid-upload
RegistryClient(Store(Path(sys.argv[2])), docker_config=Path(sys.argv[2])).push_artifact(art, sys.argv[3], report)
"""


def test_push_killed_mid_upload_then_pushed_again(tmp_path: Path, registry: RegistryServer) -> None:
    shards = [
        write_gguf(tmp_path / f"big-{i:05d}-of-00003.gguf", seed=i, shard=(i, 3), padding_bytes=10 * MIB)
        for i in (1, 2, 3)
    ]
    created = datetime(2025, 1, 2, tzinfo=timezone.utc)  # the same artifact in every process
    art = package(shards[0], created=created)
    total = sum(layer.size for layer in art.layers) + len(art.config_bytes)
    ref = f"{registry.host}/ai/killed:v1"
    seed = random.randrange(1 << 32)
    chance = random.Random(seed)
    for _ in range(2):
        kill_at = int(total * chance.uniform(0.1, 0.9))
        process = subprocess.Popen(
            [sys.executable, "-c", PUSH_SCRIPT, str(shards[0]), str(tmp_path / "pusher"), ref, created.isoformat()],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if int(line) >= kill_at:
                os.kill(process.pid, signal.SIGKILL)
                break
        assert process.wait(timeout=60) == -signal.SIGKILL, f"the push ended before its kill (seed {seed})"

    RegistryClient(Store(tmp_path / "pusher"), docker_config=tmp_path).push_artifact(art, ref)

    expected = {art.id, art.config_digest, *(layer.digest for layer in art.layers)}
    stored = registry.storage / "docker/registry/v2/blobs/sha256"
    held = {f"sha256:{data.parent.name}": data for data in stored.glob("*/*/data")}
    assert set(held) == expected, f"seed {seed}"
    for digest, data in held.items():
        assert "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest() == digest, f"seed {seed}"
    manifest = requests.get(
        f"{registry.url}/v2/ai/killed/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert manifest.headers["Docker-Content-Digest"] == art.id
    assert json.loads(manifest.content)["layers"] == [layer.descriptor() for layer in art.layers]
