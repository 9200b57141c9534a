"""Pull throughput against curl and curl+sync: the same blob from the same local registry, in the same run.

Starts Debian's docker-registry on a free loopback port, pushes a synthetic GGUF written with the `gguf`
package (~150 MiB, bigger than SmolLM2's 98 MB), pulls it with RegistryClient into a fresh store, and
fetches the same blob with `curl -o FILE`, then with `curl -o FILE && sync FILE DIR`. A pull flushes each
blob to the disk before it becomes visible, so curl+sync (the same promise) is the baseline; plain curl is
printed beside it. Goal: the pull at or above 0.9 of curl+sync on an idle machine.

    .venv/bin/python benchmarks/pull.py [--mib 150] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docker_model.distribution import RegistryClient, Store, package
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import start_registry

MIB = 1 << 20
GOAL = 0.9  # of curl+sync's throughput, on an idle machine


def big_gguf(directory: Path, mib: int) -> Path:
    """A valid GGUF of about `mib` MiB (one tiny tensor plus a big padding tensor)."""
    return write_gguf(directory / "bench.gguf", padding_bytes=mib * MIB)


def time_pull(client: RegistryClient, ref: str) -> tuple[float, float]:
    """Wall and CPU seconds (all threads of this process) of one pull."""
    start, cpu = time.perf_counter(), time.process_time()
    client.pull(ref)
    return time.perf_counter() - start, time.process_time() - cpu


def time_commands(*commands: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of commands run one after the other."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=150, help="layer size in MiB (default 150)")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of each (default 3)")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is needed for the comparison")

    with tempfile.TemporaryDirectory(prefix="pull-bench-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        try:
            art = package(big_gguf(work, args.mib))
            layer = art.layers[0]
            ref = f"{registry.host}/bench/model:latest"
            RegistryClient(Store(work / "source"), docker_config=work).push_artifact(art, ref)
            blob_url = f"{registry.url}/v2/bench/model/blobs/{layer.digest}"
            target = work / "curl.out"
            curl = ["curl", "-sSf", "-o", str(target), blob_url]
            ours: list[tuple[float, float]] = []
            curls: list[tuple[float, float]] = []
            synced: list[tuple[float, float]] = []
            for run in range(args.runs):
                store_root = work / f"store-{run}"
                ours.append(time_pull(RegistryClient(Store(store_root), docker_config=work), ref))
                shutil.rmtree(store_root)
                curls.append(time_commands(curl))
                target.unlink()
                synced.append(time_commands(curl, ["sync", str(target), str(work)]))
                target.unlink()
        finally:
            registry.stop()

    size_mb = layer.size / 1e6
    print(f"blob: {size_mb:.1f} MB, {args.runs} runs each, medians; load average {os.getloadavg()[0]:.2f}")
    walls = {}
    for name, runs in (("RegistryClient.pull", ours), ("curl + sync", synced), ("curl", curls)):
        wall, cpu = (statistics.median(x) for x in zip(*runs, strict=True))
        walls[name] = wall
        print(f"{name + ':':21}{size_mb / wall:8.1f} MB/s  ({wall:.3f} s wall, {cpu:.3f} s CPU)")
    ratio = walls["curl + sync"] / walls["RegistryClient.pull"]
    print(f"ratio (pull / curl + sync): {ratio:.2f}  (goal: >= {GOAL} on an idle machine)")
    print(f"ratio (pull / curl):        {walls['curl'] / walls['RegistryClient.pull']:.2f}")


if __name__ == "__main__":
    main()
