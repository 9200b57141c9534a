"""One model's worker process: loads a GGUF file and serves the OpenAI-compatible API on a UNIX socket
or a TCP port.

    python -m docker_model.runner.worker --model PATH (--socket PATH | --host H --port P)
        [--handoff-socket PATH]

Its start-up is on the path of a cold `docker model run`, so it binds its socket first (the runner's
health check then waits on it rather than polling) and loads the model in a thread, where llama.cpp's
C code runs without the GIL, while the main thread imports the web stack.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from docker_model.runner.runtime_flags import CACHE_TYPES
from docker_model.runner.shared.cpu import default_threads
from docker_model.settings import DEFAULT_CONTEXT_SIZE

if TYPE_CHECKING:
    from .engine import Engine
    from .llama import LlamaModel
    from .routes import WorkerState

DEFAULT_BATCH_SIZE = 512
DEFAULT_MAX_QUEUE = 512


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="docker-model-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="GGUF file (first shard of a split model)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", type=Path, help="serve on this UNIX socket")
    where.add_argument("--port", type=int, help="serve on this TCP port")
    parser.add_argument("--host", default="127.0.0.1", help="TCP address with --port (default: %(default)s)")
    parser.add_argument("--handoff-socket", type=Path, help="UNIX socket on which the runner hands over clients")
    parser.add_argument("--model-name", help="name reported by /v1/models (default: the file's stem)")
    parser.add_argument("--model-id", default="", help="the model's short ID, in the IDs of the responses it keeps")
    parser.add_argument("-c", "--ctx-size", type=int, default=DEFAULT_CONTEXT_SIZE, help="context per request")
    parser.add_argument("-np", "--parallel", type=int, default=1, help="requests decoded together")
    parser.add_argument(
        "-t", "--threads", type=int, help="llama.cpp threads (default: one per physical core, fewer while busy)"
    )
    parser.add_argument("-b", "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="tokens per decode")
    parser.add_argument("-ngl", "--n-gpu-layers", type=int, default=0, help="layers offloaded to the GPU")
    for short, name, what in (("-ctk", "--cache-type-k", "keys"), ("-ctv", "--cache-type-v", "values")):
        parser.add_argument(short, name, choices=CACHE_TYPES, default="f16", help=f"KV cache type of the {what}")
    parser.add_argument("--chat-template", type=Path, help="Jinja chat template (default: the GGUF's)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the runner) goes away")
    parser.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, help="waiting requests before 503")
    parser.add_argument("--rpc", type=_comma_list, default=[], help="RPC servers (host:port,...) holding the layers")
    parser.add_argument(
        "-ts", "--tensor-split", type=_fractions, default=[], help="each RPC server's share of the layers (1,3)"
    )
    # Sampling defaults: llama-server's (see SamplingParams) unless given here.
    parser.add_argument("--temp", type=float, help="default temperature")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--min-p", type=float)
    parser.add_argument("--repeat-penalty", type=float)
    args = parser.parse_args(argv)
    for name in ("ctx_size", "parallel", "threads", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.rpc and args.n_gpu_layers == 0:
        parser.error("--rpc needs --n-gpu-layers: the layers offloaded are the ones the RPC servers hold")
    if args.tensor_split and len(args.tensor_split) != len(args.rpc):
        parser.error(f"--tensor-split gives {len(args.tensor_split)} shares for {len(args.rpc)} RPC servers")
    return args


def _comma_list(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def _fractions(text: str) -> list[float]:
    shares = [float(item) for item in _comma_list(text)]
    if any(share < 0 for share in shares) or sum(shares) <= 0:
        raise argparse.ArgumentTypeError(f"shares must be non-negative with a positive sum, not {text!r}")
    return [share / sum(shares) for share in shares]


def listen(args: argparse.Namespace) -> socket.socket:
    """The socket the API is served on, bound and listening: connections wait there while the model loads."""
    if args.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(args.socket))
    else:
        listener = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.host, args.port))
    listener.listen(2048)
    return listener


def load_engine(args: argparse.Namespace) -> tuple[LlamaModel, Engine]:
    """The model and its engine (the llama.cpp context): the slow, GIL-free part of start-up."""
    from .engine import Engine
    from .llama import LlamaModel
    from .metrics import WorkerMetrics

    pool = None
    if args.rpc:
        from .llama import log_listeners
        from .rpc_client import RpcPool

        pool = RpcPool(args.rpc, args.tensor_split)
        log_listeners.append(pool.record)
        pool.attach()
    model = LlamaModel(args.model, args.n_gpu_layers, pool)
    try:
        threads = args.threads or default_threads()
        engine = Engine(
            model,
            args.ctx_size,
            args.parallel,
            args.batch_size,
            threads,
            args.max_queue,
            adapt_threads=not args.threads,
            cache_types=(args.cache_type_k, args.cache_type_v),
            metrics=WorkerMetrics(args.model_name or args.model.stem),
        )
        return model, engine
    except BaseException:
        model.close()
        raise


def worker_state(args: argparse.Namespace, model: LlamaModel, engine: Engine) -> WorkerState:
    from .chat_template import ChatTemplate
    from .routes import WorkerState
    from .sampling import SamplingParams

    source = args.chat_template.read_text() if args.chat_template else model.chat_template()
    template = ChatTemplate(source, model.token_text(model.bos), model.token_text(model.eos))
    sampling = SamplingParams().updated(
        temperature=args.temp,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repeat_penalty=args.repeat_penalty,
    )
    return WorkerState(model, engine, template, args.model_name or args.model.stem, sampling, args.model_id)


def _exit_with_parent(parent_pid: int) -> None:
    """A worker must not outlive the runner that started it, even when the runner is SIGKILLed."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.parent_pid:
        _exit_with_parent(args.parent_pid)
    try:
        listener = listen(args)
    except OSError as exc:
        print(f"error: cannot listen on {args.socket or f'{args.host}:{args.port}'}: {exc}", file=sys.stderr)
        return 1
    with ThreadPoolExecutor(1, thread_name_prefix="load") as pool:
        loading = pool.submit(load_engine, args)
        import uvicorn

        from .llama import ModelLoadError
        from .routes import build_app

        try:
            state = worker_state(args, *loading.result())
        except (ModelLoadError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    where = f"unix:{args.socket}" if args.socket else f"http://{args.host}:{args.port}"
    print(
        f"serving {state.model_name} on {where}: {args.parallel} x {state.engine.n_ctx_seq} tokens, "
        f"{args.threads or f'up to {default_threads()}'} threads",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        build_app(state, args.handoff_socket), log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    uvicorn.Server(config).run(sockets=[listener])
    return 0


if __name__ == "__main__":
    sys.exit(main())
