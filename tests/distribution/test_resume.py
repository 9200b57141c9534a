"""Interrupted pulls resume and fetch only the missing bytes; concurrent pulls share one download."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from docker_model.distribution import ProgressEvent, PullCancelledError, RegistryClient, Store, package
from docker_model.distribution.artifact import Artifact
from tests.distribution.http_proxy import CountingProxy
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.integration
MIB = 1 << 20


def publish(tmp_path: Path, registry: RegistryServer, mib: int = 4) -> Artifact:
    """Push a GGUF of about `mib` MiB as `ai/big` and return its artifact."""
    art = package(write_gguf(tmp_path / "big.gguf", padding_bytes=mib * MIB))
    RegistryClient(Store(tmp_path / "src"), docker_config=tmp_path).push_artifact(art, f"{registry.host}/ai/big")
    return art


def puller(tmp_path: Path) -> RegistryClient:
    return RegistryClient(Store(tmp_path / "dst"), docker_config=tmp_path, backoff=0.01)


def test_truncated_incomplete_file_is_resumed(tmp_path: Path, registry: RegistryServer, proxy: CountingProxy) -> None:
    art = publish(tmp_path, registry)
    layer = art.layers[0]
    client = puller(tmp_path)
    kept = layer.size // 3
    partial = client.store.layout.incomplete(layer.digest)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(layer.source.read_bytes()[:kept])  # a pull that died after a third

    model = client.pull(f"{proxy.host}/ai/big")
    assert model.id == art.id
    assert proxy.blob_bytes[layer.digest] == layer.size - kept
    assert (layer.digest, f"bytes={kept}-", 206) in proxy.blob_requests
    assert client.store.blobs.path(layer.digest).read_bytes() == layer.source.read_bytes()
    assert not partial.exists()


def test_connection_cut_mid_blob_resumes_in_the_same_pull(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy
) -> None:
    art = publish(tmp_path, registry)
    layer = art.layers[0]
    proxy.cut = (layer.digest, layer.size // 2)
    model = puller(tmp_path).pull(f"{proxy.host}/ai/big")
    assert model.id == art.id
    assert proxy.blob_bytes[layer.digest] == layer.size  # first half, then exactly the rest
    ranges = [rng for digest, rng, _ in proxy.blob_requests if digest == layer.digest]
    assert ranges[0] is None and ranges[-1] == f"bytes={layer.size // 2}-"


def test_server_ignoring_range_restarts_the_download(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy
) -> None:
    art = publish(tmp_path, registry)
    layer = art.layers[0]
    client = puller(tmp_path)
    partial = client.store.layout.incomplete(layer.digest)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"stale bytes that are not the blob's start")
    proxy.ignore_range = True
    assert client.pull(f"{proxy.host}/ai/big").id == art.id
    assert proxy.blob_bytes[layer.digest] == layer.size
    assert client.store.blobs.path(layer.digest).read_bytes() == layer.source.read_bytes()


def test_cancelled_pull_leaves_a_resumable_file(tmp_path: Path, registry: RegistryServer, proxy: CountingProxy) -> None:
    art = publish(tmp_path, registry)
    layer = art.layers[0]
    client = puller(tmp_path)
    cancel = threading.Event()

    def on_progress(event: ProgressEvent) -> None:
        if event.current >= 2 * MIB:
            cancel.set()

    with pytest.raises(PullCancelledError, match="resume"):
        client.pull(f"{proxy.host}/ai/big", progress=on_progress, cancel=cancel)
    kept = client.store.blobs.incomplete_size(layer.digest)
    assert 2 * MIB <= kept < layer.size
    assert client.store.list() == []

    assert client.pull(f"{proxy.host}/ai/big").id == art.id
    # The second pull asked for exactly the rest (a byte count could still include the cancelled
    # transfer's last chunks, which the proxy may forward after the first pull returned).
    ranges = [rng for digest, rng, _ in proxy.blob_requests if digest == layer.digest]
    assert ranges[-1] == f"bytes={kept}-"


PULL_SCRIPT = """
import sys
from pathlib import Path
from docker_model.distribution import RegistryClient, Store
model = RegistryClient(Store(Path(sys.argv[1])), docker_config=Path(sys.argv[1])).pull(sys.argv[2])
print(model.id)
"""


def test_two_processes_pulling_one_model_share_one_download(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy
) -> None:
    art = publish(tmp_path, registry, mib=8)
    layer = art.layers[0]
    proxy.seconds_per_mib = 0.15  # about a second per pull, so the two overlap
    root = tmp_path / "shared-store"
    ref = f"{proxy.host}/ai/big"
    procs = [
        subprocess.Popen([sys.executable, "-c", PULL_SCRIPT, str(root), ref], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [art.id, art.id]
    assert proxy.blob_bytes[layer.digest] == layer.size  # one download between them
    store = Store(root)
    assert [m.id for m in store.list()] == [art.id]
    assert store.check() == []
    assert store.blobs.incomplete_files() == []


def test_two_threads_pulling_one_model(tmp_path: Path, registry: RegistryServer, proxy: CountingProxy) -> None:
    art = publish(tmp_path, registry)
    proxy.seconds_per_mib = 0.1
    client = puller(tmp_path)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.pull(f"{proxy.host}/ai/big").id)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [art.id, art.id]
    assert proxy.blob_bytes[art.layers[0].digest] == art.layers[0].size
