"""One model's worker process: loads a GGUF file and serves the OpenAI-compatible API on a UNIX socket
or a TCP port.

    python -m docker_model.runner.worker --model PATH (--socket PATH | --host H --port P)
        [--handoff-socket PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from docker_model.runner.shared.cpu import default_threads
from docker_model.settings import DEFAULT_CONTEXT_SIZE

from .chat_template import ChatTemplate
from .engine import Engine
from .llama import LlamaModel, ModelLoadError
from .routes import WorkerState, build_app
from .sampling import SamplingParams

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
    parser.add_argument("-c", "--ctx-size", type=int, default=DEFAULT_CONTEXT_SIZE, help="context per request")
    parser.add_argument("-np", "--parallel", type=int, default=1, help="requests decoded together")
    parser.add_argument("-t", "--threads", type=int, default=default_threads(), help="llama.cpp threads")
    parser.add_argument("-b", "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="tokens per decode")
    parser.add_argument("-ngl", "--n-gpu-layers", type=int, default=0, help="layers offloaded to the GPU")
    parser.add_argument("--chat-template", type=Path, help="Jinja chat template (default: the GGUF's)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the runner) goes away")
    parser.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, help="waiting requests before 503")
    defaults = SamplingParams()
    parser.add_argument("--temp", type=float, default=defaults.temperature, help="default temperature")
    parser.add_argument("--top-k", type=int, default=defaults.top_k)
    parser.add_argument("--top-p", type=float, default=defaults.top_p)
    parser.add_argument("--min-p", type=float, default=defaults.min_p)
    parser.add_argument("--repeat-penalty", type=float, default=defaults.repeat_penalty)
    args = parser.parse_args(argv)
    for name in ("ctx_size", "parallel", "threads", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def load(args: argparse.Namespace) -> WorkerState:
    model = LlamaModel(args.model, args.n_gpu_layers)
    source = args.chat_template.read_text() if args.chat_template else model.chat_template()
    template = ChatTemplate(source, model.token_text(model.bos), model.token_text(model.eos))
    engine = Engine(model, args.ctx_size, args.parallel, args.batch_size, args.threads, args.max_queue)
    sampling = SamplingParams(
        temperature=args.temp,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repeat_penalty=args.repeat_penalty,
    )
    return WorkerState(model, engine, template, args.model_name or args.model.stem, sampling)


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
        state = load(args)
    except (ModelLoadError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    where = f"unix:{args.socket}" if args.socket else f"http://{args.host}:{args.port}"
    print(
        f"serving {state.model_name} on {where}: {args.parallel} x {state.engine.n_ctx_seq} tokens, "
        f"{args.threads} threads",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        build_app(state, args.handoff_socket),
        uds=str(args.socket) if args.socket else None,
        host=args.host,
        port=args.port or 0,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
