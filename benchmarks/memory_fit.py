"""The memory estimate (docker_model/runner/memory_estimate.py) against what llama.cpp and the worker take.

For each model and context it prints one Markdown row: the estimate's parts; the buffers llama.cpp logs
when it makes the worker's context (weights, KV cache, compute and output); the worker's RSS after it
loaded and after it answered a prompt of 600 tokens; and the errors (estimate / measured - 1). Models:
SmolLM2-135M-Instruct Q4_1 and random-weight gemma3 (sliding-window layers) and qwen3 models written by
tests/fixtures/random_models.py. About a minute on 2 cores.

    .venv/bin/python benchmarks/memory_fit.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docker_model.runner.memory_estimate import ModelShape, estimate
from tests.fixtures.memory_probe import Buffers, Residency, logged_buffers, worker_flags, worker_rss
from tests.fixtures.models import fetch_smollm2
from tests.fixtures.random_models import GEMMA3, QWEN3, write_random_model

MiB = 1024**2
CASES = (  # model, context per sequence, sequences, cache type
    ("SmolLM2-135M", 1024, 4, "f16"),
    ("SmolLM2-135M", 8192, 4, "f16"),
    ("SmolLM2-135M", 8192, 4, "q8_0"),
    ("gemma3 (random)", 2048, 4, "f16"),
    ("gemma3 (random)", 8192, 2, "q8_0"),
    ("qwen3 (random)", 4096, 2, "f16"),
)
HEADER = (
    "| model | ctx/seq × seqs | cache | est. weights | est. KV | est. compute | est. overhead | est. total "
    "| llama.cpp weights | llama.cpp KV | llama.cpp compute reserved (est.) | RSS loaded | RSS after prompt "
    "| KV error | total error |\n" + "| --- " * 15 + "|"
)


def models(directory: Path) -> dict[str, Path]:
    return {
        "SmolLM2-135M": fetch_smollm2(),
        "gemma3 (random)": write_random_model(directory / "gemma3.gguf", GEMMA3),
        "qwen3 (random)": write_random_model(directory / "qwen3.gguf", QWEN3),
    }


def measure(path: Path, ctx: int, parallel: int, cache: str, log: Path) -> tuple[Buffers, Residency]:
    return logged_buffers(path, ctx, parallel, cache), worker_rss(path, log, *worker_flags(ctx, parallel, cache))


def row(name: str, ctx: int, parallel: int, cache: str, shape: ModelShape, buffers: Buffers, rss: Residency) -> str:
    est = estimate(shape, ctx, parallel, cache_type_k=cache, cache_type_v=cache)
    reserved = estimate(shape, ctx, parallel, cache_type_k=cache, cache_type_v=cache, gpu_layers=-1).compute_vram
    cells = [
        name, f"{ctx} × {parallel}", cache,
        *(_mib(part) for part in (est.weights_ram, est.kv_cache, est.compute, est.overhead, est.ram)),
        _mib(buffers.model), _mib(buffers.kv), f"{_mib(buffers.compute)} ({_mib(reserved)})",
        _mib(rss.loaded), _mib(rss.after_prompt),
        _error(est.kv_cache, buffers.kv), _error(est.ram, rss.after_prompt),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def _mib(size: int) -> str:
    return f"{size / MiB:.1f}"


def _error(estimated: int, measured: int) -> str:
    return f"{(estimated / measured - 1) * 100:+.1f}%"


def main() -> int:
    print(HEADER)
    with tempfile.TemporaryDirectory() as tmp:
        paths = models(Path(tmp))
        for name, ctx, parallel, cache in CASES:
            buffers, rss = measure(paths[name], ctx, parallel, cache, Path(tmp) / "worker.log")
            print(row(name, ctx, parallel, cache, ModelShape.from_gguf(paths[name]), buffers, rss), flush=True)
    print("\nMiB. est. compute: what generation makes resident, output buffer included; in brackets, the")
    print("estimate of the whole reservation llama.cpp logs, which only a batch of n_ubatch outputs touches.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
