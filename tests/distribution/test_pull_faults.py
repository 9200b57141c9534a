"""Pulls that meet faults: killed at random points, run four at once, or filling the disk. Each ends with a
whole model and a store whose integrity check finds nothing wrong."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from docker_model.distribution import RegistryClient, Store
from docker_model.distribution.artifact import GGUF, Artifact, build_artifact
from docker_model.distribution.packaging import layer_from_file
from docker_model.runner.api.error_table import storage_problem
from tests.distribution.http_proxy import CountingProxy
from tests.fixtures.disks import resize, tmpfs
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.integration
MIB = 1 << 20

PULL_SCRIPT = """
import sys
from pathlib import Path
from docker_model.distribution import RegistryClient, Store
messages = set()
client = RegistryClient(Store(Path(sys.argv[1])), docker_config=Path(sys.argv[1]), backoff=0.01)
model = client.pull(sys.argv[2], progress=lambda event: messages.add(event.message))
print(model.id, "Waiting for another download" in messages)
"""


def publish_random(tmp_path: Path, registry: RegistryServer, mib: int) -> Artifact:
    """Push a GGUF header followed by `mib` MiB of random bytes as `ai/noise` (random: no byte run repeats,
    so a resume from the wrong offset cannot pass the digest check by chance)."""
    path = write_gguf(tmp_path / "noise.gguf")
    with open(path, "ab") as f:
        f.write(os.urandom(mib * MIB))
    art = build_artifact({"format": "gguf"}, [layer_from_file(path, GGUF)], datetime.now(timezone.utc))
    RegistryClient(Store(tmp_path / "src"), docker_config=tmp_path).push_artifact(art, f"{registry.host}/ai/noise")
    return art


def start_pull(root: Path, ref: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PULL_SCRIPT, str(root), ref], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # not made yet, or renamed into place
        return 0


def assert_whole(store: Store, art: Artifact) -> None:
    """The model is listed, its blob is the pushed bytes, and nothing is damaged or left half-written."""
    assert [m.id for m in store.list()] == [art.id]
    layer = art.layers[0]
    assert layer.source is not None
    assert store.blobs.path(layer.digest).read_bytes() == layer.source.read_bytes()
    assert store.check() == []
    assert store.blobs.incomplete_files() == []


def test_a_pull_killed_ten_times_at_random_points_resumes_to_a_whole_model(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy
) -> None:
    art = publish_random(tmp_path, registry, mib=24)
    layer = art.layers[0]
    proxy.seconds_per_mib = 0.03  # about 0.7 s for the whole blob, so kills land inside it
    store = Store(tmp_path / "store")
    partial = store.layout.incomplete(layer.digest)
    seed = time.time_ns()
    rng = random.Random(seed)
    kept_sizes = []
    for _ in range(10):
        pull = start_pull(store.root, f"{proxy.host}/ai/noise")
        before = size_of(partial)
        left = layer.size - before
        if rng.random() < 0.3:  # anywhere (start-up, manifest, config, the blob), but never its second half
            target, seconds = before + left // 2, rng.uniform(0.05, 0.6)
        else:  # inside the blob, before at most half of what is left
            target, seconds = before + int(rng.uniform(0.05, 0.5) * left), 20.0
        deadline = time.monotonic() + seconds
        while pull.poll() is None and time.monotonic() < deadline and size_of(partial) < target:
            time.sleep(0.002)
        pull.send_signal(signal.SIGKILL)
        pull.communicate(timeout=10)
        kept_sizes.append(size_of(partial))

    assert sum(0 < size < layer.size for size in kept_sizes) >= 5, f"seed {seed}: kills inside the blob {kept_sizes}"
    assert store.check() == [], f"seed {seed}"
    resumed = start_pull(store.root, f"{proxy.host}/ai/noise")
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, f"seed {seed}: {err}"
    assert out.split()[0] == art.id
    assert_whole(store, art)
    ranges = [rng for digest, rng, status in proxy.blob_requests if digest == layer.digest and status == 206]
    assert ranges, f"seed {seed}: no pull resumed with a Range request"


def test_four_processes_pulling_one_model_download_it_once(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy
) -> None:
    art = publish_random(tmp_path, registry, mib=12)
    layer = art.layers[0]
    proxy.seconds_per_mib = 0.25  # about 3 s for the blob: the four start within it
    root = tmp_path / "shared-store"
    pulls = [start_pull(root, f"{proxy.host}/ai/noise") for _ in range(4)]
    results = [pull.communicate(timeout=60) for pull in pulls]
    assert [pull.returncode for pull in pulls] == [0, 0, 0, 0], [err for _, err in results]
    assert [out.split()[0] for out, _ in results] == [art.id] * 4
    assert any(out.split()[1] == "True" for out, _ in results)  # they overlapped: one waited for another
    assert [status for digest, _, status in proxy.blob_requests if digest == layer.digest] == [200]
    assert proxy.blob_bytes[layer.digest] == layer.size
    assert_whole(Store(root), art)


def test_a_pull_that_fills_the_disk_fails_in_one_line_and_resumes_once_there_is_room(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy
) -> None:
    art = publish_random(tmp_path, registry, mib=12)
    layer = art.layers[0]
    with tmpfs(tmp_path / "small", "8m") as disk:
        store = Store(disk / "models")
        client = RegistryClient(store, docker_config=tmp_path, backoff=0.01)
        with pytest.raises(OSError) as caught:
            client.pull(f"{proxy.host}/ai/noise")
        assert caught.value.errno == errno.ENOSPC
        message = storage_problem(caught.value)  # what the runner answers, and the CLI prints
        assert message is not None and "\n" not in message
        assert message.startswith(f"no space left for {store.layout.incomplete(layer.digest)}")
        assert message.endswith("free some, or move MODELS_PATH")
        assert store.list() == []
        assert store.check() == []
        kept = store.blobs.incomplete_size(layer.digest)
        assert 0 < kept < layer.size

        resize(disk, "32m")
        assert client.pull(f"{proxy.host}/ai/noise").id == art.id
        assert_whole(store, art)
        ranges = [rng for digest, rng, _ in proxy.blob_requests if digest == layer.digest]
        assert ranges[-1] == f"bytes={kept}-"
