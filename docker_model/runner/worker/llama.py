"""A loaded GGUF model behind llama-cpp-python's low-level bindings: vocabulary, metadata, contexts."""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .bindings import lc

if TYPE_CHECKING:
    from .rpc_client import RpcPool

_LOG_WARN = 3  # ggml_log_level: keep warnings and errors, drop the verbose load chatter
_LOG_CONT = 5
log_listeners: list[Callable[[str], None]] = []  # each gets every line llama.cpp logs (e.g. its buffer sizes)


@lc.llama_log_callback
def _log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    line = text.decode("utf-8", "replace")
    for listener in log_listeners:
        listener(line)
    if level >= _LOG_WARN and level != _LOG_CONT:
        sys.stderr.write(line)


_backend_ready = False


def init_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        lc.llama_log_set(_log, ctypes.c_void_p())
        lc.llama_backend_init()
        _backend_ready = True


GGML_CACHE_TYPES = {"f16": lc.GGML_TYPE_F16, "q8_0": lc.GGML_TYPE_Q8_0, "q4_0": lc.GGML_TYPE_Q4_0}


class ModelLoadError(RuntimeError):
    pass


class LlamaModel:
    """Model weights and vocabulary; shared by every sequence of the context created from it."""

    def __init__(self, path: Path, n_gpu_layers: int = 0, pool: RpcPool | None = None):
        """`pool`: RPC servers, attached, that hold the offloaded layers instead of this machine's GPUs."""
        init_backend()
        params = lc.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        if pool is not None:
            devices, split = pool.device_array(), pool.tensor_split(lc.llama_max_devices())
            params.devices = ctypes.cast(devices, ctypes.c_void_p)
            if split is not None:
                params.tensor_split = ctypes.cast(split, ctypes.POINTER(ctypes.c_float))
            self._pool_arrays = (devices, split)  # alive while llama.cpp may read them
        self.pool = pool
        self.path = path
        # On the CPU a decode's time grows with its tokens; a GPU takes many tokens for the price of one.
        self.on_cpu = n_gpu_layers == 0 or not lc.llama_supports_gpu_offload()
        self.ptr = lc.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            raise ModelLoadError(f"llama.cpp could not load the model file {path}")
        self.vocab = lc.llama_model_get_vocab(self.ptr)
        self.n_vocab: int = lc.llama_vocab_n_tokens(self.vocab)
        self.n_embd: int = lc.llama_model_n_embd(self.ptr)
        self.bos: int = lc.llama_vocab_bos(self.vocab)
        self.eos: int = lc.llama_vocab_eos(self.vocab)
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)

    def is_eog(self, token: int) -> bool:
        """Whether `token` ends a generation (end of sequence, end of turn, ...)."""
        return bool(lc.llama_vocab_is_eog(self.vocab, token))

    @functools.cached_property
    def eog_tokens(self) -> frozenset[int]:
        """Every token that ends a generation; computed on first use (a call per token of the vocabulary)."""
        return frozenset(t for t in range(self.n_vocab) if self.is_eog(t))

    def metadata(self, key: str) -> str | None:
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            n = lc.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    def chat_template(self) -> str | None:
        raw = lc.llama_model_chat_template(self.ptr, None)
        return raw.decode("utf-8", "replace") if raw else None

    def token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return (lc.llama_vocab_get_text(self.vocab, token) or b"").decode("utf-8", "replace")

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Tokens of `text`, with the model's BOS when `special` (never doubled by a BOS already in text)."""
        data = text.encode()
        capacity = len(data) + 8
        while True:
            out = (lc.llama_token * capacity)()
            n = lc.llama_tokenize(self.vocab, data, len(data), out, capacity, special, True)
            if n >= 0:
                break
            capacity = -n
        tokens = out[:n]
        if len(tokens) > 1 and tokens[0] == tokens[1] == self.bos:
            del tokens[0]
        return tokens

    def piece(self, token: int) -> bytes:
        """The bytes of one generated token (control tokens render empty); cached per token id."""
        cached = self._pieces.get(token)
        if cached is None:
            buf = self._piece_buf
            n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            cached = self._pieces[token] = buf.raw[:n]
        return cached

    def new_context(
        self, n_ctx: int, n_seq_max: int, n_batch: int, n_threads: int, cache_types: tuple[str, str] = ("f16", "f16")
    ) -> ctypes.c_void_p:
        """A context whose KV cache holds `n_seq_max` independent sequences of `n_ctx / n_seq_max` each, its
        keys and values stored as `cache_types` (names in GGML_CACHE_TYPES).

        Mean pooling is set so that pooled embeddings can be read while embeddings are switched on;
        it has no effect on generation.
        """
        params = lc.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_seq_max = n_seq_max
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.kv_unified = False
        params.type_k, params.type_v = (GGML_CACHE_TYPES[name] for name in cache_types)
        params.pooling_type = lc.LLAMA_POOLING_TYPE_MEAN
        params.no_perf = True
        ctx = lc.llama_init_from_model(self.ptr, params)
        if not ctx:
            raise ModelLoadError(f"llama.cpp could not create a context of {n_ctx} tokens")
        return ctx

    def close(self) -> None:
        if self.ptr:
            lc.llama_model_free(self.ptr)
            self.ptr = None
