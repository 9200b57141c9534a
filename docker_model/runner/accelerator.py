"""Which accelerator the runner can use: CUDA, Metal or the CPU, and why.

Detection runs once at start-up. It looks at the machine (an NVIDIA driver, Apple Silicon) and at the
installed llama.cpp build (which GPU libraries it ships) without importing llama_cpp, so the runner
process stays small. The probes are parameters so tests can stand in for hardware this machine lacks.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from docker_model import settings
from docker_model.runner.shared.cpu import default_threads


@dataclass(frozen=True)
class Accelerator:
    kind: str  # "cuda", "metal" or "cpu"
    detail: str  # what was found, for `docker model status`
    threads: int  # most llama.cpp threads a model gets unless its runtime flags say `--threads`
    problem: str | None = None  # a GPU the engine cannot use, and the fix
    free_vram: Callable[[], int | None] | None = field(default=None, compare=False)  # bytes, for a CUDA GPU

    @property
    def unified_memory(self) -> bool:
        """Whether the GPU's memory is the machine's RAM (Apple Silicon): then layers offloaded take RAM too."""
        return self.kind == "metal"

    @property
    def description(self) -> str:
        """What `docker model status` says the engine runs on."""
        text = (
            f"{self.detail}, {self.threads} CPU threads (one per physical core, fewer while other programs keep "
            "cores busy; --threads sets a fixed count)"
        )
        return f"{text}; {self.problem}" if self.problem else text

    @property
    def gpu_offload(self) -> bool:
        return self.kind != "cpu"


def nvidia_gpus() -> list[str]:
    """GPU names reported by the NVIDIA driver, empty when there is no driver or no GPU."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else []


def nvidia_free_memory() -> int | None:
    """Free memory of the NVIDIA GPUs together, in bytes, as the driver reports it; None when unknown."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return sum(int(line) for line in result.stdout.split()) * 1024**2 if result.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def is_apple_silicon() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def engine_gpu_libraries() -> set[str]:
    """The GPU backends the installed llama-cpp-python was built with ("cuda", "metal"), from its files."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return set()
    found: set[str] = set()
    for location in spec.submodule_search_locations:
        for library in Path(location).rglob("*ggml*"):
            name = library.name.lower()
            found.update(kind for kind in ("cuda", "metal") if kind in name)
    return found


@dataclass
class Probes:
    nvidia_gpus: Callable[[], list[str]] = nvidia_gpus
    apple_silicon: Callable[[], bool] = is_apple_silicon
    engine_gpu_libraries: Callable[[], set[str]] = engine_gpu_libraries
    threads: Callable[[], int] = default_threads
    free_vram: Callable[[], int | None] = nvidia_free_memory


def detect(probes: Probes | None = None) -> Accelerator:
    """What the runner uses: what the machine and the llama.cpp build offer, as `DOCKER_MODEL_GPU` allows."""
    probes = probes or Probes()
    wanted = settings.gpu_mode()
    if wanted == "none":
        return Accelerator("cpu", "CPU (DOCKER_MODEL_GPU=none)", probes.threads())
    found = detect_hardware(probes)
    if wanted != "auto" and found.kind != wanted:  # another GPU than the one asked for is not used either
        missing = {"cuda": "no NVIDIA GPU was found", "metal": "this is not an Apple Silicon Mac"}[wanted]
        why = found.problem or (missing if found.kind == "cpu" else f"the GPU found is {found.detail}")
        problem = f"DOCKER_MODEL_GPU={wanted}, but {why}: running on the CPU"
        return Accelerator("cpu", "CPU", found.threads, problem=problem)
    return found


def detect_hardware(probes: Probes) -> Accelerator:
    cpu, threads = "CPU", probes.threads()
    engine = probes.engine_gpu_libraries()
    gpus = probes.nvidia_gpus()
    if gpus:
        names = ", ".join(gpus)
        if "cuda" in engine:
            return Accelerator("cuda", f"CUDA: {names}", threads, free_vram=probes.free_vram)
        return Accelerator(
            "cpu",
            cpu,
            threads,
            problem=f"NVIDIA GPU found ({names}) but llama-cpp-python was built without CUDA; "
            "rebuild it with ./install.sh --gpu cuda",
        )
    if probes.apple_silicon():
        if "metal" in engine:
            return Accelerator("metal", "Metal: Apple Silicon GPU", threads)
        return Accelerator(
            "cpu",
            cpu,
            threads,
            problem="Apple Silicon GPU found but llama-cpp-python was built without Metal; "
            "rebuild it with ./install.sh --gpu metal",
        )
    return Accelerator("cpu", cpu, threads)
