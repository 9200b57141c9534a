"""Accelerator detection. This machine has no GPU, so NVIDIA and Apple hardware are stood in for by
injected probes; the CPU case also runs against the real machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docker_model.runner.accelerator import Probes, detect
from docker_model.runner.shared.cpu import cgroup_cpu_limit, default_threads, threads_for


def probes(gpus: list[str] = (), apple: bool = False, engine: set[str] = frozenset()) -> Probes:
    return Probes(
        nvidia_gpus=lambda: list(gpus),
        apple_silicon=lambda: apple,
        engine_gpu_libraries=lambda: set(engine),
        threads=lambda: 8,
    )


def test_nvidia_gpu_with_a_cuda_build_offloads() -> None:
    found = detect(probes(gpus=["NVIDIA L4"], engine={"cuda"}))
    assert (found.kind, found.gpu_offload, found.problem) == ("cuda", True, None)
    assert "NVIDIA L4" in found.detail


def test_nvidia_gpu_with_a_cpu_build_says_how_to_fix_it() -> None:
    found = detect(probes(gpus=["NVIDIA L4"]))
    assert found.kind == "cpu" and not found.gpu_offload
    assert found.problem is not None and "./install.sh --gpu cuda" in found.problem


def test_apple_silicon_with_a_metal_build_offloads() -> None:
    assert detect(probes(apple=True, engine={"metal"})).kind == "metal"


def test_apple_silicon_with_a_cpu_build_says_how_to_fix_it() -> None:
    found = detect(probes(apple=True))
    assert found.kind == "cpu"
    assert "./install.sh --gpu metal" in (found.problem or "")


def test_no_gpu_means_cpu_without_complaint() -> None:
    found = detect(probes())
    assert (found.kind, found.problem, found.detail, found.threads) == ("cpu", None, "CPU", 8)
    assert found.description == (
        "CPU, 8 CPU threads (one per physical core, fewer while other programs keep cores busy; "
        "--threads sets a fixed count)"
    )


def test_this_machine_is_detected_as_cpu() -> None:
    """This machine (and CI) has no GPU: the real probes must say CPU."""
    assert detect().kind == "cpu"


def test_threads_are_one_per_physical_core_the_process_may_use(tmp_path: Path) -> None:
    assert threads_for(logical=16, physical=8, usable=16, quota=None) == 8  # two hyperthreads per core
    assert threads_for(logical=8, physical=8, usable=8, quota=None) == 8
    assert threads_for(logical=16, physical=8, usable=4, quota=None) == 2  # taskset to 4 logical CPUs
    assert threads_for(logical=16, physical=8, usable=16, quota=3) == 3  # a container's --cpus 2.5
    assert threads_for(logical=1, physical=1, usable=1, quota=None) == 1
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("250000 100000\n")
    assert cgroup_cpu_limit(cpu_max) == 3
    cpu_max.write_text("max 100000\n")
    assert cgroup_cpu_limit(cpu_max) is None
    assert cgroup_cpu_limit(tmp_path / "absent") is None
    assert 1 <= default_threads() <= (os.cpu_count() or 1)


def test_another_gpu_than_the_one_asked_for_means_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCKER_MODEL_GPU=metal on an NVIDIA machine: the runner runs on the CPU, as its status says, and
    offloads no layer to the GPU it was told not to use."""
    monkeypatch.setenv("DOCKER_MODEL_GPU", "metal")
    found = detect(probes(gpus=["NVIDIA L4"], engine={"cuda"}))
    assert (found.kind, found.gpu_offload, found.detail, found.free_vram) == ("cpu", False, "CPU", None)
    assert found.problem == "DOCKER_MODEL_GPU=metal, but the GPU found is CUDA: NVIDIA L4: running on the CPU"
    monkeypatch.setenv("DOCKER_MODEL_GPU", "cuda")
    found = detect(probes(apple=True, engine={"metal"}))
    assert (found.kind, found.unified_memory) == ("cpu", False)
    assert found.problem == "DOCKER_MODEL_GPU=cuda, but the GPU found is Metal: Apple Silicon GPU: running on the CPU"
    assert detect(probes()).problem == "DOCKER_MODEL_GPU=cuda, but no NVIDIA GPU was found: running on the CPU"
