"""Sizing a model to the memory it may use, before it loads.

The scheduler asks for a plan with the context and sequences the model would load with. If the estimate
(`memory_estimate.py`) does not fit, a context that was not set explicitly shrinks, down to the largest that
fits but never below CONTEXT_FLOOR nor below what the request in hand needs; then the sequences, down to
one; then the load is refused with the sizes and the fixes. A context set with `configure` is never shrunk.
(Unloading idle models comes first: the scheduler does that before it settles for less.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from docker_model.runner import memory_estimate
from docker_model.runner.memory_estimate import MemoryEstimate, ModelShape
from docker_model.runner.model_settings import ModelSettings, wanted_context_size
from docker_model.runner.runtime_flags import flag_value
from docker_model.units import human_bytes

CONTEXT_FLOOR = 2048  # tokens per sequence: a smaller context is refused rather than loaded
ALL_LAYERS = 999  # offload every layer to the GPU


class ModelDoesNotFit(Exception):
    """The model cannot load in the memory it may use: the message gives the sizes and the fixes."""


@dataclass(frozen=True)
class Wanted:
    """How a model would load if memory were plenty, and why."""

    ctx_per_seq: int
    parallel: int
    reason: str  # where the context comes from: "set with configure", "packaged with the model", ...
    explicit: bool = False  # set with `configure`: load as it is or not at all
    fixed_parallel: bool = False  # set with the runtime flag --parallel: never fewer
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    gpu_layers: int = 0

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments of `memory_estimate.estimate` besides the context and the sequences."""
        return {"cache_type_k": self.cache_type_k, "cache_type_v": self.cache_type_v, "gpu_layers": self.gpu_layers}

    def estimate(
        self, shape: ModelShape, ctx_per_seq: int | None = None, parallel: int | None = None
    ) -> MemoryEstimate:
        return memory_estimate.estimate(
            shape, ctx_per_seq or self.ctx_per_seq, parallel or self.parallel, **self.options
        )


@dataclass(frozen=True)
class Room:
    """Bytes a model about to load may take: RAM, and VRAM where layers go to a GPU (None: not limited)."""

    ram: int | None
    vram: int | None = None
    note: str = ""  # why it is smaller than the memory free, when it is
    unified: bool = False  # the GPU's memory is the RAM: what goes to the GPU takes RAM too
    vram_label: str = "GPU memory"  # what `vram` is: a GPU's, or the offers of a pool of RPC servers

    def holds(self, needs: MemoryEstimate) -> bool:
        ram = needs.total if self.unified else needs.ram
        return (self.ram is None or ram <= self.ram) and (self.vram is None or needs.vram <= self.vram)

    def describe(self) -> str:
        parts = [f"{human_bytes(self.ram)} of RAM" if self.ram is not None else ""]
        parts.append(f"{human_bytes(self.vram)} of {self.vram_label}" if self.vram is not None else "")
        described = " and ".join(part for part in parts if part) or "unlimited memory"
        return f"{described} ({self.note})" if self.note else described


@dataclass(frozen=True)
class Fit:
    """How a model loads: its context per sequence, its sequences, what they should take, and why."""

    ctx_per_seq: int
    parallel: int
    estimate: MemoryEstimate
    reason: str


def wanted_for(config: dict[str, Any], settings: ModelSettings, parallel: int, gpu_offload: bool) -> Wanted:
    """How a model would load with memory to spare: from its settings and runtime flags, the runner's number
    of sequences per model (`parallel`) and whether layers go to a GPU."""
    ctx, reason = wanted_context_size(settings, config)
    flags = settings.runtime_flags
    flagged_parallel = flag_value(flags, "-np", "--parallel")
    gpu_layers = flag_value(flags, "-ngl", "--n-gpu-layers")
    return Wanted(
        ctx_per_seq=ctx,
        parallel=int(flagged_parallel) if flagged_parallel else parallel,
        reason=reason,
        explicit=settings.context_size is not None,
        fixed_parallel=flagged_parallel is not None,
        cache_type_k=flag_value(flags, "-ctk", "--cache-type-k") or "f16",
        cache_type_v=flag_value(flags, "-ctv", "--cache-type-v") or "f16",
        gpu_layers=int(gpu_layers) if gpu_layers else (ALL_LAYERS if gpu_offload else 0),
    )


@functools.lru_cache(maxsize=64)
def shape_of(gguf: Path) -> ModelShape:
    """The shape of the model in `gguf` (a file in the store never changes: read once)."""
    return ModelShape.from_gguf(gguf)


def plan(shape: ModelShape, wanted: Wanted, room: Room, needed: int = 0, name: str = "MODEL") -> Fit:
    """The largest way to load the model that `room` holds; ModelDoesNotFit when none does.

    `needed`: tokens the request that asked for the model needs; its context is never shrunk below that.
    `name`: the model's, for the fixes the refusal suggests.
    """
    full = wanted.estimate(shape)
    if room.holds(full):
        return Fit(wanted.ctx_per_seq, wanted.parallel, full, wanted.reason)
    if wanted.explicit:
        raise ModelDoesNotFit(_refusal(shape, wanted, room, full, "the context it was given", name))
    floor = min(wanted.ctx_per_seq, max(CONTEXT_FLOOR, needed))
    for parallel in range(wanted.parallel, wanted.parallel - 1 if wanted.fixed_parallel else 0, -1):
        ctx = largest_context(shape, wanted, room, parallel, floor)
        if ctx is not None:
            reduced = f"{wanted.reason} ({wanted.ctx_per_seq} tokens), reduced to fit {room.describe()}"
            if parallel < wanted.parallel:
                reduced += f" with {parallel} sequence{'s' if parallel > 1 else ''} instead of {wanted.parallel}"
            return Fit(ctx, parallel, wanted.estimate(shape, ctx, parallel), reduced)
    fewest = wanted.parallel if wanted.fixed_parallel else 1
    smallest = replace(wanted, ctx_per_seq=floor, parallel=fewest)
    what = f"{floor} tokens × {fewest} sequence{'s' if fewest > 1 else ''}"
    raise ModelDoesNotFit(_refusal(shape, smallest, room, smallest.estimate(shape), what, name))


def largest_context(shape: ModelShape, wanted: Wanted, room: Room, parallel: int, floor: int) -> int | None:
    """The largest context per sequence from `floor` to the wanted one that `room` holds with `parallel`
    sequences; None when `floor` does not fit."""
    return memory_estimate.largest_context(
        shape, room.holds, parallel, floor=floor, ceiling=wanted.ctx_per_seq, **wanted.options
    )


def _refusal(shape: ModelShape, wanted: Wanted, room: Room, needs: MemoryEstimate, what: str, name: str) -> str:
    kv = f"{human_bytes(needs.kv_cache)} of KV cache for {wanted.ctx_per_seq} tokens × {wanted.parallel} sequences"
    fixes = ["unload a model (`docker model unload`)", "use a smaller quantization"]
    smaller = largest_context(shape, wanted, room, wanted.parallel, memory_estimate.CONTEXT_PAD)
    if smaller is not None:
        fixes.insert(0, f"set a context that fits (`docker model configure --context-size {smaller} {name}`)")
    return (
        f"the model needs {human_bytes(needs.ram + needs.vram)} ({human_bytes(needs.weights_ram + needs.weights_vram)} "
        f"of weights, {kv}) with {what}, but the runner may use {room.describe()}: {', '.join(fixes[:-1])}, "
        f"or {fixes[-1]}"
    )
