"""The memory a model's worker will take, estimated from the GGUF file before it loads.

It follows how llama.cpp (the one llama-cpp-python 0.3.36 vendors) sizes a context made the worker's way:
`n_ctx = ctx_per_seq × parallel`, one KV stream per sequence (`kv_unified` off), `n_ubatch = n_batch =
max(512, parallel)`, flash attention (llama.cpp's `auto` turns it on, on the CPU), sliding-window layers at
full size (`swa_full`: llama.cpp's default, which the worker keeps).

- weights: the tensor data of every shard, mapped (`mmap`, populated at load): resident from the start.
  With `gpu_layers` = N the output layer and the last N - 1 repeating blocks go to the GPU (llama.cpp
  counts the output layer in N); the token embeddings stay on the CPU, and a model that ties them to its
  output layer has a copy of them on the GPU too.
- KV cache: for each layer that keeps one, `cells × sequences × (K row + V row)`, a row being KV heads ×
  key (value) length elements of the cache type (CACHE_TYPES). `cells` is the context per sequence as
  llama.cpp pads it (to a multiple of 256); without `swa_full` a sliding-window layer has
  `min(cells, window + n_ubatch)`, padded likewise. Recurrent layers (Mamba, RWKV, Qwen3-Next's linear
  attention, ...) keep a state of fixed size per sequence instead, in f32. A layer's cache is in VRAM when
  the layer is.
- compute: the compute graph's peak, modelled (`4 bytes × max(n_ubatch × layer, outputs × (n_vocab +
  5·n_embd))`, layer = `max(2·n_embd + 3·n_ff + 2·n_embd_q, 2·n_embd + 3·n_embd_q + 2·n_embd_kv)`) plus its
  f16 attention masks (`n_ubatch × cells × 2` bytes per kind of layer) and the output buffer (the logits of
  one token per sequence). In RAM, with `outputs` = one per sequence: what a prompt filling a micro-batch
  makes resident. llama.cpp reserves the buffer for `outputs` = n_ubatch (the figure it logs), which only an
  embeddings batch touches; that is what a GPU holds (allocated, not paged in).
- overhead: the worker process itself, measured (WORKER_OVERHEAD + VOCAB_OVERHEAD_PER_TOKEN × n_vocab):
  Python, llama.cpp, the web stack, the vocabulary, the memory a request takes.

Accuracy (benchmarks/memory_fit.py: SmolLM2-135M Q4_1 at 1024 and 8192 tokens × 4 sequences, f16 and q8_0
caches; random-weight gemma3 with sliding-window layers and qwen3 models): the weights and the KV cache
are llama.cpp's logged buffers to the byte (within its 0.01 MiB rounding); the reservation estimate is 0 to
+35% over llama.cpp's logged compute buffer (the most for small models whose layers outweigh their
logits); the RAM total is within MEMORY_TOLERANCE of the worker's resident memory (RSS) after it loaded
and answered a 600-token prompt (measured: -1% to +4%). Beyond the estimate: an embeddings request of
n_batch tokens touches the whole reservation and grows the output buffer to `n_batch × (n_vocab + n_embd)
× 4` bytes. GPU placement follows llama.cpp's code, not measurements.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker_model.distribution.gguf_header import GGUFHeader

MiB = 1024**2
CACHE_TYPES: dict[str, float] = {  # bytes per element: ggml's block bytes / block size
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}
CONTEXT_PAD = 256  # llama.cpp pads the context per sequence (and a sliding-window cache) to this
WORKER_OVERHEAD = 61 * MiB  # the worker process with a model of a small vocabulary, after a first request
VOCAB_OVERHEAD_PER_TOKEN = 400  # bytes per token of the vocabulary (llama.cpp's strings, maps and merges)
MEMORY_TOLERANCE = 0.10  # of the worker's RSS after a prompt, which the RAM estimate is within
_F32 = 4
_F16 = 2

# Sliding-window layers where llama.cpp sets them in code rather than from `attention.sliding_window_pattern`:
# architecture -> (period, dense first, window when the GGUF gives none (0: no sliding window then)).
# With period p, layer i slides unless i % p == p - 1 (dense first: unless i % p == 0).
_SWA_PATTERNS: dict[str, tuple[int, bool, int]] = {
    "gemma2": (2, False, 4096),
    "gemma3": (6, False, 0),
    "gemma3n": (5, False, 0),
    "cohere2": (4, False, 0),
    "cohere2moe": (4, True, 0),
    "gpt-oss": (2, False, 0),
    "olmo2": (4, False, 0),
    "exaone-moe": (4, False, 128),
    "afmoe": (4, False, 0),
    "mellum": (4, False, 0),
    "plamo3": (8, False, 0),
    "smallthinker": (4, True, 0),
    "muse-glimmer": (4, False, 0),
    "llama4": (4, False, 8192),  # chunked attention, sized like a window
}
_RECURRENT = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
_RECURRENT_WHERE_NO_KV_HEADS = frozenset({"jamba", "granitehybrid", "lfm2", "lfm2moe", "nemotron_h", "nemotron_h_moe"})
_RECURRENT_BY_INTERVAL = frozenset({"qwen3next", "qwen35", "qwen35moe"})
_NO_MEMORY = frozenset(  # encoders and diffusion models: llama.cpp makes no KV cache for them
    {
        "bert", "jina-bert-v2", "jina-bert-v3", "nomic-bert", "nomic-bert-moe", "neo-bert", "eurobert",
        "modern-bert", "gemma-embedding", "wavtokenizer-dec", "dream", "llada", "llada-moe", "rnd1",
    }
)  # fmt: skip
_BLOCK = re.compile(r"^blk\.\d+\.")


@dataclass(frozen=True)
class LayerCache:
    """What one repeating block keeps: K and V elements per token of context (0: no KV cache), whether it
    attends to a sliding window only, and the f32 elements of its recurrent state per sequence."""

    k: int = 0
    v: int = 0
    swa: bool = False
    state: int = 0


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a GGUF file, read once."""

    architecture: str
    n_layers: int
    weights_bytes: int  # all tensor data, all shards
    layer_weights_bytes: int  # the part in repeating blocks (blk.N.*), for splitting by GPU layers
    n_ctx_train: int
    n_embd: int = 0
    n_vocab: int = 0
    n_ff: int = 0  # feed-forward width a token goes through (a MoE's used experts together)
    n_embd_q: int = 0  # query heads × key length, the largest of any layer
    n_swa: int = 0  # sliding window, in tokens
    layers: tuple[LayerCache, ...] = ()
    output_weights_bytes: int = 0  # output.* and output_norm.* tensors
    tied_output_bytes: int = 0  # token embeddings the output layer reuses (no output.weight)

    @classmethod
    def from_gguf(cls, path: Path) -> ModelShape:
        """Read the shape of the model at `path` (a sharded model: its first shard)."""
        from docker_model.distribution.gguf_metadata import find_shards

        shards = find_shards(path)
        first = GGUFHeader(shards[0])
        tensors = dict(first.tensor_bytes)
        for shard in shards[1:]:
            tensors.update(GGUFHeader(shard).tensor_bytes)
        return _shape(_Metadata(first.values, first.array_lengths), tensors)

    def kv_bytes_per_token(self, cache_type_k: str = "f16", cache_type_v: str = "f16") -> int:
        """KV cache bytes one token of one sequence takes in every layer (sliding-window ones included)."""
        return sum(_row_bytes(layer.k, cache_type_k) + _row_bytes(layer.v, cache_type_v) for layer in self.layers)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a worker takes; the `_vram` parts of `kv_cache` and `compute` are on the GPU."""

    weights_ram: int
    weights_vram: int
    kv_cache: int  # KV cache and recurrent state, wherever they are
    compute: int  # compute and output buffers, wherever they are
    overhead: int  # the worker process itself
    kv_vram: int = 0
    compute_vram: int = 0

    @property
    def ram(self) -> int:
        """Host memory the worker needs."""
        return self.weights_ram + self.kv_cache - self.kv_vram + self.compute - self.compute_vram + self.overhead

    @property
    def vram(self) -> int:
        """GPU memory the worker needs."""
        return self.weights_vram + self.kv_vram + self.compute_vram

    @property
    def total(self) -> int:
        return self.ram + self.vram


def estimate(
    shape: ModelShape,
    ctx_per_seq: int,
    parallel: int,
    *,
    cache_type_k: str = "f16",
    cache_type_v: str = "f16",
    gpu_layers: int = 0,
    n_batch: int = 512,
    swa_full: bool = True,
) -> MemoryEstimate:
    """The memory of a worker serving `parallel` sequences of `ctx_per_seq` tokens each."""
    for name in (cache_type_k, cache_type_v):
        if name not in CACHE_TYPES:
            raise ValueError(f"unknown cache type {name!r}: one of {', '.join(CACHE_TYPES)}")
    cells = context_cells(ctx_per_seq, parallel)
    ubatch = min(max(n_batch, parallel), cells * parallel)
    swa_cells = cells if swa_full else min(cells, _pad(shape.n_swa + ubatch))
    gpu_blocks, output_on_gpu = _gpu_placement(shape.n_layers, gpu_layers)
    kv = (cache_type_k, cache_type_v, cells, swa_cells, parallel)
    weights_vram, weights_ram = _weights(shape, gpu_blocks, output_on_gpu)
    compute_vram = _graph_bytes(shape, ubatch, ubatch, cells, swa_cells) if output_on_gpu else 0
    if output_on_gpu and gpu_blocks == shape.n_layers:
        graph_ram = ubatch * shape.n_embd * _F32  # only the input embeddings are computed on the CPU
    else:
        graph_ram = _graph_bytes(shape, ubatch, parallel, cells, swa_cells)
    return MemoryEstimate(
        weights_ram=weights_ram,
        weights_vram=weights_vram,
        kv_cache=_memory_bytes(shape.layers, *kv),
        compute=graph_ram + shape.n_vocab * parallel * _F32 + compute_vram,  # with the output buffer
        overhead=WORKER_OVERHEAD + VOCAB_OVERHEAD_PER_TOKEN * shape.n_vocab,
        kv_vram=_memory_bytes(shape.layers[shape.n_layers - gpu_blocks :], *kv),
        compute_vram=compute_vram,
    )


def largest_context(
    shape: ModelShape,
    holds: Callable[[MemoryEstimate], bool],
    parallel: int,
    *,
    floor: int,
    ceiling: int,
    **options: Any,
) -> int | None:
    """The largest context per sequence from `floor` to `ceiling` whose estimate `holds` accepts (the room
    has space for it): `ceiling` itself or a multiple of CONTEXT_PAD below it; None if even `floor` does not
    fit. `options`: those of `estimate`."""

    def fits(ctx: int) -> bool:
        return holds(estimate(shape, ctx, parallel, **options))

    if fits(ceiling):
        return ceiling
    low, high = -(-floor // CONTEXT_PAD), (ceiling - 1) // CONTEXT_PAD  # in steps of CONTEXT_PAD
    if low > high or not fits(low * CONTEXT_PAD):
        return None
    while low < high:  # fits(low); the answer is in low..high
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle * CONTEXT_PAD) else (low, middle - 1)
    return low * CONTEXT_PAD


def context_cells(ctx_per_seq: int, parallel: int) -> int:
    """The cells of each sequence's KV stream: llama.cpp pads the whole context, then each sequence's part."""
    return _pad(_pad(ctx_per_seq * parallel) // parallel)


def _pad(n: int) -> int:
    return -(-n // CONTEXT_PAD) * CONTEXT_PAD


def _row_bytes(elements: int, cache_type: str) -> int:
    return math.ceil(elements * CACHE_TYPES[cache_type])


def _memory_bytes(
    layers: Sequence[LayerCache], type_k: str, type_v: str, cells: int, swa_cells: int, streams: int
) -> int:
    """KV cache and recurrent state of `layers`."""
    total = 0
    for layer in layers:
        row = _row_bytes(layer.k, type_k) + _row_bytes(layer.v, type_v)
        total += row * (swa_cells if layer.swa else cells) * streams + layer.state * _F32 * streams
    return total


def _graph_bytes(shape: ModelShape, ubatch: int, outputs: int, cells: int, swa_cells: int) -> int:
    """The modelled peak of the compute graph of a micro-batch of `ubatch` tokens, `outputs` of which get
    logits, with its attention masks."""
    e, q = shape.n_embd, shape.n_embd_q
    kv = max((layer.k + layer.v for layer in shape.layers), default=0)
    layer = ubatch * max(2 * e + 3 * shape.n_ff + 2 * q, 2 * e + 3 * q + 2 * kv)
    logits = outputs * (shape.n_vocab + 5 * e)
    kinds = {layer.swa for layer in shape.layers if layer.k}
    masks = sum(swa_cells if swa else cells for swa in kinds) * ubatch * _F16
    return max(layer, logits) * _F32 + masks


def _gpu_placement(n_layers: int, gpu_layers: int) -> tuple[int, bool]:
    """Repeating blocks on the GPU, and whether the output layer is: llama.cpp offloads the output layer
    first, then blocks from the last one back; a negative count offloads everything."""
    if gpu_layers < 0:
        return n_layers, True
    return min(max(gpu_layers - 1, 0), n_layers), gpu_layers > 0


def _weights(shape: ModelShape, gpu_blocks: int, output_on_gpu: bool) -> tuple[int, int]:
    """Weight bytes in VRAM and in RAM (blocks split evenly by bytes)."""
    blocks = shape.layer_weights_bytes * gpu_blocks // max(shape.n_layers, 1)
    output = shape.output_weights_bytes if output_on_gpu else 0
    vram = blocks + output + (shape.tied_output_bytes if output_on_gpu else 0)
    return vram, shape.weights_bytes - blocks - output


class _Metadata:
    """A GGUF's key-value pairs; `get` takes keys without the `{architecture}.` prefix."""

    def __init__(self, values: dict[str, Any], array_lengths: dict[str, int]):
        self.values = values
        self.array_lengths = array_lengths
        self.arch = str(values.get("general.architecture", ""))

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(f"{self.arch}.{key}", default)

    def per_layer(self, key: str, n_layers: int, default: int = 0) -> list[int]:
        """A value that is one number for every layer or a list of one per layer."""
        value = self.get(key, default)
        return [int(v) for v in value] if isinstance(value, list) else [int(value)] * n_layers


def _shape(meta: _Metadata, tensors: dict[str, int]) -> ModelShape:
    n_layers = int(meta.get("block_count", 0))
    n_embd = int(meta.get("embedding_length", 0))
    heads = meta.per_layer("attention.head_count", n_layers)
    tied = "output.weight" not in tensors
    return ModelShape(
        architecture=meta.arch,
        n_layers=n_layers,
        weights_bytes=sum(tensors.values()),
        layer_weights_bytes=sum(size for name, size in tensors.items() if _BLOCK.match(name)),
        n_ctx_train=int(meta.get("context_length", 0)),
        n_embd=n_embd,
        n_vocab=meta.array_lengths.get("tokenizer.ggml.tokens", 0),
        n_ff=_ffn_width(meta, n_layers),
        n_embd_q=max((h * _head_size(meta, n_embd, h, "key", swa=False) for h in heads), default=0),
        n_swa=_sliding_window(meta),
        layers=_layer_caches(meta, n_layers, n_embd, heads),
        output_weights_bytes=sum(size for name, size in tensors.items() if name.startswith("output")),
        tied_output_bytes=tensors.get("token_embd.weight", 0) if tied else 0,
    )


def _ffn_width(meta: _Metadata, n_layers: int) -> int:
    dense = max(meta.per_layer("feed_forward_length", n_layers), default=0)
    experts = max(meta.per_layer("expert_feed_forward_length", n_layers), default=0)
    shared = int(meta.get("expert_shared_feed_forward_length", experts)) * int(meta.get("expert_shared_count", 0))
    return max(dense, experts * int(meta.get("expert_used_count", 0)) + shared)


def _head_size(meta: _Metadata, n_embd: int, n_head: int, kind: str, swa: bool) -> int:
    """Key or value length of a head: `{kind}_length` (`_swa` in sliding-window layers), else n_embd / heads."""
    full = int(meta.get(f"attention.{kind}_length", n_embd // n_head if n_head else 0))
    return int(meta.get(f"attention.{kind}_length_swa", full)) if swa else full


def _sliding_window(meta: _Metadata) -> int:
    return int(meta.get("attention.sliding_window", _SWA_PATTERNS.get(meta.arch, (0, False, 0))[2]))


def _swa_layers(meta: _Metadata, n_layers: int) -> list[bool]:
    pattern = meta.get("attention.sliding_window_pattern")
    if isinstance(pattern, list):
        return [bool(v) for v in pattern][:n_layers]
    if meta.arch not in _SWA_PATTERNS or not _sliding_window(meta):
        return [False] * n_layers
    period, dense_first, _ = _SWA_PATTERNS[meta.arch]
    period = int(pattern) if pattern is not None else period
    if period == 0:
        return [True] * n_layers
    return [i % period != 0 if dense_first else i % period < period - 1 for i in range(n_layers)]


def _recurrent_layers(meta: _Metadata, n_layers: int, kv_heads: list[int]) -> list[bool]:
    if meta.arch in _RECURRENT or meta.arch == "falcon-h1":
        return [True] * n_layers
    if meta.arch in _RECURRENT_WHERE_NO_KV_HEADS:
        ffn = meta.per_layer("feed_forward_length", n_layers)
        nemotron = meta.arch.startswith("nemotron_h")
        return [kv == 0 and (ff == 0 or not nemotron) for kv, ff in zip(kv_heads, ffn, strict=True)]
    if meta.arch in _RECURRENT_BY_INTERVAL:
        listed = meta.get("attention.recurrent_layers")
        if isinstance(listed, list):
            return [bool(v) for v in listed][:n_layers]
        interval = int(meta.get("full_attention_interval", 4))
        return [(i + 1) % interval != 0 for i in range(n_layers)]
    return [False] * n_layers


def _recurrent_state(meta: _Metadata, n_embd: int) -> int:
    """f32 elements of one recurrent layer's state per sequence (llama_hparams n_embd_r + n_embd_s)."""
    d_state, d_inner = int(meta.get("ssm.state_size", 0)), int(meta.get("ssm.inner_size", 0))
    ssm = d_state * d_inner
    if meta.get("wkv.head_size"):
        return int(meta.get("token_shift_count", 2)) * n_embd + n_embd * int(meta.get("wkv.head_size"))
    if meta.get("shortconv.l_cache"):
        return n_embd * (int(meta.get("shortconv.l_cache")) - 1) + ssm
    d_conv, groups = int(meta.get("ssm.conv_kernel", 0)), int(meta.get("ssm.group_count", 0))
    return max(d_conv - 1, 0) * (d_inner + 2 * groups * d_state) + ssm


def _layer_caches(meta: _Metadata, n_layers: int, n_embd: int, heads: list[int]) -> tuple[LayerCache, ...]:
    kv_heads = meta.per_layer("attention.head_count_kv", n_layers, default=-1)
    kv_heads = [h if kv < 0 else kv for h, kv in zip(heads, kv_heads, strict=True)]
    swa = _swa_layers(meta, n_layers)
    recurrent = _recurrent_layers(meta, n_layers, kv_heads)
    state = _recurrent_state(meta, n_embd)
    with_kv = n_layers - int(meta.get("nextn_predict_layers", 0))
    with_kv -= int(meta.get("attention.shared_kv_layers", 0))  # later layers reuse earlier layers' cache
    mla = meta.get("attention.key_length_mla") is not None  # one latent K row, no V
    layers = []
    for i in range(n_layers):
        attends = i < with_kv and meta.arch not in _NO_MEMORY and (not recurrent[i] or meta.arch == "falcon-h1")
        h = kv_heads[i] if attends else 0
        k = h * _head_size(meta, n_embd, heads[i], "key", swa[i])
        v = 0 if mla else h * _head_size(meta, n_embd, heads[i], "value", swa[i])
        layers.append(LayerCache(k, v, swa[i] and h > 0, state if recurrent[i] else 0))
    return tuple(layers)
