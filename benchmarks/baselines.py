"""The two baselines: llama.cpp's `llama-server` (built here) and llama-cpp-python's bundled server.

`llama-server` is built from the llama.cpp vendored in the llama-cpp-python sdist of the installed
version, so both run the same llama.cpp as the runner. The build (~10 minutes on 2 cores) is cached in
DOCKER_MODEL_BENCH_CACHE (default ~/.cache/docker-model-bench), never in the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.metadata import version
from pathlib import Path

from servers import Endpoint, free_port, running

CACHE = Path(os.environ.get("DOCKER_MODEL_BENCH_CACHE", Path.home() / ".cache" / "docker-model-bench"))
ALIAS = "smollm2"


def llama_cpp_version() -> str:
    return version("llama-cpp-python")


def llama_server_binary(cache_dir: Path = CACHE) -> Path:
    """The cached llama-server of the installed llama-cpp-python version, built on first use."""
    release = llama_cpp_version()
    build = cache_dir / f"build-{release}"
    binary = build / "bin" / "llama-server"
    if binary.exists():
        return binary
    source = cache_dir / "src" / f"llama_cpp_python-{release}"
    if not source.exists():
        sdist = cache_dir / "sdist"
        pip = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-d", str(sdist)]
        subprocess.run([*pip, f"llama-cpp-python=={release}"], check=True)
        with tarfile.open(sdist / f"llama_cpp_python-{release}.tar.gz") as archive:
            archive.extractall(source.parent, filter="data")
    print(f"building llama-server {release} in {build} (about 10 minutes on 2 cores)", file=sys.stderr)
    options = ["-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON"]
    cmake = ["cmake", "-S", str(source / "vendor" / "llama.cpp"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
    subprocess.run([*cmake, *options], check=True, stdout=subprocess.DEVNULL)
    jobs = str(os.cpu_count() or 1)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs], check=True)
    return binary


@contextmanager
def llama_server(gguf: Path, workdir: Path, parallel: int, threads: int, ctx_per_seq: int) -> Iterator[Endpoint]:
    """`llama-server --parallel N` with N x the per-sequence context (llama.cpp splits -c across slots)."""
    port = free_port()
    argv = [str(llama_server_binary()), "-m", str(gguf), "-a", ALIAS, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["-t", str(threads), "-tb", str(threads), "-c", str(parallel * ctx_per_seq), "--parallel", str(parallel)]
    argv += ["--no-webui"]
    base = f"http://127.0.0.1:{port}"
    with running(argv, f"{base}/health", workdir / f"llama-server-{parallel}.log"):
        yield Endpoint(f"{base}/v1", ALIAS)


@contextmanager
def llama_server_defaults(
    gguf: Path, workdir: Path, parallel: int, threads: int, ctx_per_seq: int
) -> Iterator[Endpoint]:
    """`llama-server` as a user starts it: only the thread count is set. Its defaults are then 4 slots
    sharing one unified KV cache of the model's trained context; `parallel` and `ctx_per_seq` are unused."""
    port = free_port()
    argv = [str(llama_server_binary()), "-m", str(gguf), "-a", ALIAS, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["-t", str(threads), "-tb", str(threads), "--no-webui"]
    base = f"http://127.0.0.1:{port}"
    with running(argv, f"{base}/health", workdir / "llama-server-defaults.log"):
        yield Endpoint(f"{base}/v1", ALIAS)


@cache
def _end_of_generation_tokens(gguf: Path) -> frozenset[int]:
    from docker_model.runner.worker.llama import LlamaModel

    model = LlamaModel(gguf)
    try:
        return model.eog_tokens
    finally:
        model.close()


@contextmanager
def llama_cpp_python(gguf: Path, workdir: Path, parallel: int, threads: int, ctx_per_seq: int) -> Iterator[Endpoint]:
    """`python -m llama_cpp.server`: one request at a time whatever `parallel` is.

    By default a new request interrupts the one streaming (it then fails); `--interrupt_requests False`
    makes requests wait their turn instead. It ignores `ignore_eos`, so every end-of-generation token
    gets a logit bias of -1e9 instead (applied by a Python logits processor, a small per-token cost
    the other servers do not pay).
    """
    del parallel  # one global lock: no slots to configure
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", ALIAS]
    argv += ["--n_ctx", str(ctx_per_seq), "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    argv += ["--interrupt_requests", "False", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(argv, f"{base}/v1/models", workdir / "llama-cpp-python.log"):
        bias = {str(token): -1e9 for token in sorted(_end_of_generation_tokens(gguf))}
        yield Endpoint(f"{base}/v1", ALIAS, extra={"logit_bias": bias})
