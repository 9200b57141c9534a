"""The memory estimate: its formulas against figures llama.cpp logged, the shapes it reads from GGUF files, and
(integration) the estimate against what llama.cpp allocates and what a real worker keeps resident.

Tolerances: the KV cache within 1% of llama.cpp's logged KV buffers (it matches to their 0.01 MiB
rounding); the reservation estimate from 0 to +35% over llama.cpp's compute buffer; the RAM total within
MEMORY_TOLERANCE (10%) of the worker's RSS after it answered a prompt that fills a micro-batch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from docker_model.runner.memory_estimate import (
    CACHE_TYPES,
    MEMORY_TOLERANCE,
    LayerCache,
    MemoryEstimate,
    ModelShape,
    context_cells,
    estimate,
    largest_context,
)
from tests.fixtures.gguf_files import write_sharded_gguf
from tests.fixtures.memory_probe import logged_buffers, worker_flags, worker_rss
from tests.fixtures.random_models import GEMMA3, QWEN3, write_random_model

MiB = 1024**2
# SmolLM2-135M: 30 layers of 3 KV heads of 64, 576 wide, 49152 tokens; weights as llama.cpp maps them.
SMOLLM2 = ModelShape(
    architecture="llama",
    n_layers=30,
    weights_bytes=96576768,
    layer_weights_bytes=66493440,
    n_ctx_train=8192,
    n_embd=576,
    n_vocab=49152,
    n_ff=1536,
    n_embd_q=576,
    layers=(LayerCache(192, 192),) * 30,
    output_weights_bytes=2304,
    tied_output_bytes=30081024,
)
# The random gemma3: 8 layers of 2 KV heads of 128, layer 5 global and the others a window of 512 tokens.
GEMMA3_LAYERS = tuple(LayerCache(256, 256, swa=i != 5) for i in range(8))
GEMMA3_SHAPE = ModelShape(
    architecture="gemma3",
    n_layers=8,
    weights_bytes=10904576,
    layer_weights_bytes=10625024,
    n_ctx_train=32768,
    n_embd=256,
    n_vocab=1024,
    n_ff=768,
    n_embd_q=1024,
    n_swa=512,
    layers=GEMMA3_LAYERS,
    output_weights_bytes=1024,
    tied_output_bytes=278528,
)


@pytest.mark.parametrize(
    ("ctx", "parallel", "cache", "logged_mib"),
    [(1024, 4, "f16", 90.0), (8192, 4, "f16", 720.0), (8192, 4, "q8_0", 382.5), (1000, 3, "f16", 67.5)],
)
def test_kv_cache_is_what_llama_cpp_logged_for_smollm2(ctx: int, parallel: int, cache: str, logged_mib: float) -> None:
    found = estimate(SMOLLM2, ctx, parallel, cache_type_k=cache, cache_type_v=cache)
    assert found.kv_cache == logged_mib * MiB


def test_contexts_are_padded_as_llama_cpp_pads_them() -> None:
    assert context_cells(1000, 3) == 1024  # n_ctx 3000 -> 3072, 1024 a sequence
    assert context_cells(1024, 4) == 1024
    assert context_cells(100, 1) == 256
    assert context_cells(300, 2) == 512  # 600 -> 768, 384 a sequence -> 512


def test_sliding_window_layers_are_full_size_unless_told() -> None:
    row = 2 * (256 + 256)  # K and V rows of f16
    full = estimate(GEMMA3_SHAPE, 2048, 4)
    assert full.kv_cache == 8 * 2048 * 4 * row == 64 * MiB  # llama.cpp logged 64.00 MiB
    windowed = estimate(GEMMA3_SHAPE, 2048, 4, swa_full=False)
    assert windowed.kv_cache == (2048 + 7 * 1024) * 4 * row == 36 * MiB  # window 512 + n_ubatch 512; logged 36.00
    assert estimate(GEMMA3_SHAPE, 768, 4, swa_full=False).kv_cache == 8 * 768 * 4 * row  # the window outgrows it
    wide_batch = estimate(GEMMA3_SHAPE, 8192, 1024, swa_full=False)  # n_ubatch grows to 1024 sequences
    assert wide_batch.kv_cache == (8192 + 7 * 1536) * 1024 * row


def test_cache_types_take_ggml_block_sizes() -> None:
    assert CACHE_TYPES["f16"] == 2 and CACHE_TYPES["q8_0"] == 34 / 32 and CACHE_TYPES["q4_0"] == 18 / 32
    assert SMOLLM2.kv_bytes_per_token() == 30 * 2 * 192 * 2
    assert SMOLLM2.kv_bytes_per_token("q8_0", "q4_0") == 30 * (204 + 108)
    mixed = estimate(SMOLLM2, 1024, 1, cache_type_k="q8_0", cache_type_v="f16")
    assert mixed.kv_cache == 30 * 1024 * (204 + 384)
    with pytest.raises(ValueError, match="unknown cache type"):
        estimate(SMOLLM2, 1024, 1, cache_type_k="q3_k")


def within(budget: int) -> Callable[[MemoryEstimate], bool]:
    return lambda needs: needs.ram <= budget


def test_largest_context_fits_and_the_next_step_does_not() -> None:
    budget = estimate(SMOLLM2, 5000, 2).ram
    found = largest_context(SMOLLM2, within(budget), 2, floor=1024, ceiling=32768)
    assert found is not None and found % 256 == 0 and found >= 4864
    assert estimate(SMOLLM2, found, 2).ram <= budget < estimate(SMOLLM2, found + 256, 2).ram
    assert largest_context(SMOLLM2, within(budget), 2, floor=1024, ceiling=4000) == 4000  # the ceiling fits: itself
    assert largest_context(SMOLLM2, within(budget), 2, floor=8192, ceiling=32768) is None
    quantized = largest_context(SMOLLM2, within(budget), 2, floor=1024, ceiling=32768, cache_type_k="q8_0")
    assert quantized is not None and quantized > found


def test_largest_context_grows_with_the_budget() -> None:
    budgets = range(200 * MiB, 2000 * MiB, 37 * MiB)
    found = [largest_context(SMOLLM2, within(budget), 4, floor=512, ceiling=16384) or 0 for budget in budgets]
    assert found == sorted(found) and found[0] == 0 and found[-1] == 16384


def test_estimate_grows_with_context_and_sequences() -> None:
    ram = [estimate(SMOLLM2, ctx, parallel).ram for ctx in (512, 1024, 4096) for parallel in (1, 2, 4)]
    assert ram[0] < ram[1] < ram[2] and ram[2] < ram[5] < ram[8]


def test_gpu_layers_move_the_output_layer_first_then_the_last_blocks() -> None:
    cpu = estimate(SMOLLM2, 1024, 4)
    assert (cpu.weights_vram, cpu.kv_vram, cpu.compute_vram, cpu.vram) == (0, 0, 0, 0)
    output_only = estimate(SMOLLM2, 1024, 4, gpu_layers=1)
    assert output_only.weights_vram == 2304 + 30081024  # output norm and the tied embeddings' copy
    assert output_only.weights_ram == cpu.weights_ram - 2304 and output_only.kv_vram == 0
    half = estimate(SMOLLM2, 1024, 4, gpu_layers=16)
    assert half.kv_vram == half.kv_cache // 2 and half.weights_vram == 66493440 // 2 + 2304 + 30081024
    everything = estimate(SMOLLM2, 1024, 4, gpu_layers=-1)
    assert everything == estimate(SMOLLM2, 1024, 4, gpu_layers=31) == estimate(SMOLLM2, 1024, 4, gpu_layers=99)
    assert everything.kv_vram == everything.kv_cache and everything.weights_ram == 96576768 - 66493440 - 2304
    assert everything.ram < cpu.ram and everything.total > cpu.total  # the reservation, and the copy
    assert everything.ram == everything.total - everything.vram


def test_shapes_of_random_models(tmp_path: Path) -> None:
    gemma3 = ModelShape.from_gguf(write_random_model(tmp_path / "gemma3.gguf", GEMMA3))
    assert gemma3 == GEMMA3_SHAPE
    qwen3 = ModelShape.from_gguf(write_random_model(tmp_path / "qwen3.gguf", QWEN3))
    assert qwen3.layers == (LayerCache(3 * 64, 3 * 64),) * 6 and qwen3.n_swa == 0
    assert (qwen3.n_embd, qwen3.n_vocab, qwen3.n_ff, qwen3.n_embd_q) == (384, 1024, 1024, 384)


def test_a_sharded_model_counts_every_shard(tmp_path: Path) -> None:
    shards = write_sharded_gguf(tmp_path, count=3)
    shape = ModelShape.from_gguf(shards[0])
    assert shape.weights_bytes == shape.layer_weights_bytes == 3 * 16 * 32 * 4  # one f32 block tensor a shard
    with pytest.raises(ValueError, match="first shard"):
        ModelShape.from_gguf(shards[1])


def _header_only(path: Path, arch: str, **values: Any) -> ModelShape:
    """The shape of a GGUF holding `arch` metadata only (keys without the architecture prefix)."""
    import gguf

    writer = gguf.GGUFWriter(path, arch)
    for key, value in values.items():
        name = f"{arch}.{key.replace('__', '.')}"
        if isinstance(value, list):
            writer.add_array(name, value)
        elif isinstance(value, bool):
            writer.add_bool(name, value)
        else:
            writer.add_uint32(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return ModelShape.from_gguf(path)


def test_sliding_window_patterns_set_in_llama_cpp_code(tmp_path: Path) -> None:
    common = {"block_count": 4, "embedding_length": 64, "attention__head_count": 4}
    gemma2 = _header_only(tmp_path / "gemma2.gguf", "gemma2", **common)
    assert gemma2.n_swa == 4096 and [layer.swa for layer in gemma2.layers] == [True, False, True, False]
    gemma3 = _header_only(tmp_path / "gemma3.gguf", "gemma3", **common)  # no window given: none
    assert not any(layer.swa for layer in gemma3.layers)
    listed = _header_only(
        tmp_path / "gemma4.gguf", "gemma4", attention__sliding_window=1024, **common,
        attention__sliding_window_pattern=[True, True, True, False], attention__shared_kv_layers=1,
    )  # fmt: skip
    assert [layer.swa for layer in listed.layers] == [True, True, True, False]
    assert [layer.k for layer in listed.layers] == [64, 64, 64, 0]  # the last layer reuses an earlier cache


def test_hybrid_and_recurrent_models_keep_states_per_sequence(tmp_path: Path) -> None:
    ssm = {"ssm__conv_kernel": 4, "ssm__inner_size": 256, "ssm__state_size": 16, "ssm__group_count": 1}
    state = 3 * (256 + 2 * 16) + 16 * 256
    base = {"block_count": 8, "embedding_length": 128, "attention__head_count": 4, "attention__head_count_kv": 2}
    qwen35 = _header_only(tmp_path / "qwen35.gguf", "qwen35", **base, **ssm)  # every 4th layer attends
    assert [bool(layer.k) for layer in qwen35.layers] == [False, False, False, True] * 2
    assert [layer.state for layer in qwen35.layers] == [state, state, state, 0] * 2
    assert estimate(qwen35, 1024, 2).kv_cache == 2 * (1024 * 2 * 2 * 64 * 2) + 6 * state * 4 * 2
    jamba = _header_only(
        tmp_path / "jamba.gguf", "jamba", **{**base, "attention__head_count_kv": [0, 0, 2, 0, 0, 0, 2, 0]}, **ssm
    )
    assert [bool(layer.k) for layer in jamba.layers] == [bool(layer.state == 0) for layer in jamba.layers]
    mamba = _header_only(tmp_path / "mamba.gguf", "mamba", block_count=2, embedding_length=128, **ssm)
    assert mamba.layers == (LayerCache(state=state),) * 2


def test_latent_attention_keeps_no_values(tmp_path: Path) -> None:
    deepseek2 = _header_only(
        tmp_path / "deepseek2.gguf", "deepseek2", block_count=2, embedding_length=512, attention__head_count=8,
        attention__head_count_kv=1, attention__key_length=576, attention__value_length=512,
        attention__key_length_mla=192, attention__value_length_mla=128,
    )  # fmt: skip
    assert deepseek2.layers == (LayerCache(576, 0),) * 2


# -- integration: llama.cpp's buffers and a real worker's resident memory --------------------------------


@pytest.fixture(scope="module")
def random_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("random-models")
    return {
        "gemma3": write_random_model(directory / "gemma3.gguf", GEMMA3),
        "qwen3": write_random_model(directory / "qwen3.gguf", QWEN3),
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    ("model", "ctx", "parallel", "cache", "swa_full"),
    [("gemma3", 2048, 4, "f16", True), ("gemma3", 4096, 2, "q8_0", False), ("qwen3", 1024, 5, "q4_0", True)],
)
def test_kv_cache_and_reservation_are_what_llama_cpp_allocates(
    random_models: dict[str, Path], model: str, ctx: int, parallel: int, cache: str, swa_full: bool
) -> None:
    path = random_models[model]
    logged = logged_buffers(path, ctx, parallel, cache, swa_full)
    options: dict[str, Any] = {"cache_type_k": cache, "cache_type_v": cache, "swa_full": swa_full}
    shape = ModelShape.from_gguf(path)
    assert estimate(shape, ctx, parallel, **options).kv_cache == pytest.approx(logged.kv, rel=0.01)
    assert shape.weights_bytes == pytest.approx(logged.model, rel=0.001)
    reserved = estimate(shape, ctx, parallel, gpu_layers=-1, **options).compute_vram
    assert logged.compute <= reserved <= 1.35 * logged.compute


@pytest.mark.integration
def test_smollm2s_shape(smollm2_gguf: Path) -> None:
    assert ModelShape.from_gguf(smollm2_gguf) == SMOLLM2


@pytest.mark.integration
@pytest.mark.parametrize(("ctx", "parallel", "cache"), [(1024, 4, "f16"), (8192, 4, "f16"), (8192, 4, "q8_0")], ids=str)
def test_estimate_is_near_the_smollm2_workers_rss(
    smollm2_gguf: Path, tmp_path: Path, ctx: int, parallel: int, cache: str
) -> None:
    _assert_near_rss(smollm2_gguf, tmp_path, ctx, parallel, cache)


@pytest.mark.integration
def test_estimate_is_near_a_gemma3_workers_rss(random_models: dict[str, Path], tmp_path: Path) -> None:
    _assert_near_rss(random_models["gemma3"], tmp_path, 2048, 4, "f16")


def _assert_near_rss(model: Path, tmp_path: Path, ctx: int, parallel: int, cache: str) -> None:
    rss = worker_rss(model, tmp_path / "worker.log", *worker_flags(ctx, parallel, cache))
    estimated = estimate(ModelShape.from_gguf(model), ctx, parallel, cache_type_k=cache, cache_type_v=cache)
    assert estimated.ram == pytest.approx(rss.after_prompt, rel=MEMORY_TOLERANCE), (estimated, rss)
