"""Accelerator detection. This machine has no GPU, so NVIDIA and Apple hardware are stood in for by
injected probes; the CPU case also runs against the real machine."""

from __future__ import annotations

from docker_model.runner.accelerator import Probes, detect


def probes(gpus: list[str] = (), apple: bool = False, engine: set[str] = frozenset()) -> Probes:
    return Probes(
        nvidia_gpus=lambda: list(gpus),
        apple_silicon=lambda: apple,
        engine_gpu_libraries=lambda: set(engine),
        cpu_count=lambda: 8,
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
    assert (found.kind, found.problem, found.detail) == ("cpu", None, "CPU, 8 threads")


def test_this_machine_is_detected_as_cpu() -> None:
    """This machine (and CI) has no GPU: the real probes must say CPU."""
    assert detect().kind == "cpu"
