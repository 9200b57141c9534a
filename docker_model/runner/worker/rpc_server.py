"""llama.cpp's RPC server on this machine's devices, so that another machine's runner can place a model's layers
here: `python -I -u -m docker_model.runner.worker.rpc_server --host H --port P --cache DIR --cache-size N ...`.

Started by `docker model rpc-server` (cli/rpc_server.py), which has checked the address; engine code, so it lives
in the worker package. Before serving it prints `key: value` lines the CLI and tests read: endpoint, protocol,
docker-model, threads, cache, and a `device: NAME free=N total=N ...` line per device. The server itself is
llama.cpp's C loop, run in the main thread: it accepts one client at a time until the process is signalled.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from docker_model import __version__
from docker_model.files import PRIVATE_DIR, make_dirs
from docker_model.rpc_protocol import bundled_protocol, version_text
from docker_model.runner.memory import available_memory_bytes
from docker_model.units import human_bytes

from . import ggml, silent_peers

PRUNE_EVERY_SECONDS = 60.0
CACHE_FILE = re.compile(r"[0-9a-f]{16}")  # how llama.cpp names a cached tensor: its hash
_POINTER = ctypes.sizeof(ctypes.c_void_p)
GET_MEMORY_SLOT = 2 * _POINTER  # a device starts with its interface: get_name, get_description, get_memory, ...
_GET_MEMORY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t))
_START_SERVER = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)
)
_offers: list[object] = []  # the callbacks llama.cpp calls: kept alive for the process's life


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) // 2) if hasattr(os, "sched_getaffinity") else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rpc_server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--device", default="", help="device names, comma-separated (default: the GPUs, else CPU)")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--cache-size", type=int, required=True)
    parser.add_argument("--mem", type=int, help="the bytes each served device offers")
    return parser.parse_args(argv)


def check_port(host: str, port: int) -> None:
    """Exit with the reason when `host:port` cannot be bound (llama.cpp only says that it failed)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as llama.cpp binds
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                sys.exit(f"Error: port {port} on {host} is in use: stop what holds it, or choose another --port")
            sys.exit(f"Error: cannot listen on {host}:{port}: {error.strerror}")


def prune_cache(folder: Path, cap: int) -> list[Path]:
    """Delete the least recently used files of the tensor cache until it holds at most `cap` bytes. Use is
    read from access times (updated at least daily under relatime), or from writes where those are newer.
    Only llama.cpp's own cache files (16 hex digits, a tensor's hash) are touched: --cache may name a folder
    that holds other files."""
    files = []
    for entry in folder.iterdir():
        if not CACHE_FILE.fullmatch(entry.name):
            continue
        with contextlib.suppress(FileNotFoundError):  # gone meanwhile: nothing to weigh
            status = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(status.st_mode):
                files.append((entry, status))
    files.sort(key=lambda item: max(item[1].st_atime, item[1].st_mtime), reverse=True)  # most recent first
    held, removed = 0, []
    for path, status in files:
        held += status.st_size
        if held > cap:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def keep_pruning(folder: Path, cap: int) -> None:
    while True:
        time.sleep(PRUNE_EVERY_SECONDS)
        try:
            prune_cache(folder, cap)
        except OSError as error:
            print(f"warning: cannot prune the tensor cache {folder}: {error}", file=sys.stderr, flush=True)


def choose_devices(names: str) -> list[int]:
    """Handles of the devices named (as ggml names them), else the GPUs, else the CPU; exits on an unknown name."""
    library = ggml.lib()
    handles = [library.ggml_backend_dev_get(index) for index in range(library.ggml_backend_dev_count())]
    devices = {ggml.describe(handle).name: handle for handle in handles}
    if names:
        wanted = [name.strip() for name in names.split(",")]
        unknown = [name for name in wanted if name not in devices]
        if unknown:
            listed = ", ".join(f"{device.name} ({device.description})" for device in map(ggml.describe, handles))
            sys.exit(f"Error: unknown device {', '.join(unknown)}: this machine has {listed}; name them with --device")
        return [devices[name] for name in dict.fromkeys(wanted)]
    accelerators = [handle for handle in handles if ggml.describe(handle).kind in ("gpu", "igpu")]
    return accelerators or [handle for handle in handles if ggml.describe(handle).kind == "cpu"][:1]


def offer(device: int, offered: int | None) -> None:
    """Make the device report `offered` bytes as its total (and at most that as free): what clients then see.
    None, for the CPU without --mem: ggml's CPU device reports all of the machine's memory as free, so report
    what is available now instead (what the runner's fit then counts on)."""
    real = ggml.describe(device)
    if offered is not None and offered > real.total:
        sys.exit(f"Error: --mem {human_bytes(offered)} is more than {real.name} has ({human_bytes(real.total)})")
    slot = device + GET_MEMORY_SLOT
    if not _writable(slot):
        sys.exit(f"Error: cannot set {real.name}'s offer in this engine build; leave out --mem")
    pointer = ctypes.c_void_p.from_address(slot)
    if not pointer.value:
        sys.exit(f"Error: {real.name} reports no memory in this engine build; leave out --mem")
    original = _GET_MEMORY(pointer.value)

    def get_memory(handle: int, free: Any, total: Any) -> None:  # two size_t*, filled in place
        original(handle, free, total)
        if offered is None:
            free[0] = min(free[0], available_memory_bytes() or free[0])
        else:
            free[0], total[0] = min(free[0], offered), offered

    callback = _GET_MEMORY(get_memory)
    _offers.append(callback)
    pointer.value = ctypes.cast(callback, ctypes.c_void_p).value
    seen = ggml.describe(device)
    if offered is not None and (seen.free, seen.total) != (min(real.free, offered), offered):
        sys.exit(f"Error: {real.name} still reports {human_bytes(seen.total)} after the offer; leave out --mem")


def _writable(address: int) -> bool:
    """Whether `address` lies in a writable mapping of this process (True where /proc cannot tell)."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return True
    for line in maps:
        span, permissions = line.split()[:2]
        low, high = (int(bound, 16) for bound in span.split("-"))
        if low <= address < high:
            return "w" in permissions
    return False


def announce(endpoint: str, threads: int, cache: Path, cap: int, devices: list[int]) -> None:
    lines = [
        f"endpoint: {endpoint}",
        f"protocol: {version_text(bundled_protocol())}",
        f"docker-model: {__version__}",
        f"threads: {threads}",
        f"cache: {cache} (up to {human_bytes(cap)})",
    ]
    for device in map(ggml.describe, devices):
        lines.append(
            f"device: {device.name} free={device.free} total={device.total} "
            f"({human_bytes(device.free)} free of {human_bytes(device.total)}) {device.description}"
        )
    print("\n".join(lines), flush=True)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    check_port(args.host, args.port)
    try:
        make_dirs(args.cache, PRIVATE_DIR)
        prune_cache(args.cache, args.cache_size)
    except OSError as error:
        sys.exit(
            f"Error: cannot use the tensor cache {args.cache}: {error.strerror or error}; name another with --cache"
        )
    threading.Thread(target=keep_pruning, args=(args.cache, args.cache_size), daemon=True).start()
    # A client that vanishes without closing would hold the server's only client slot for good.
    silent_peers.watch_connections(silent_peers.accepted_on(args.port), "client-connection")
    ggml.init_engine()
    try:
        start_server = ggml.rpc_function("ggml_backend_rpc_start_server", _START_SERVER)
    except ggml.RpcUnavailable as error:
        sys.exit(f"Error: {error}")
    devices = choose_devices(args.device)
    for device in devices:
        if args.mem is not None or ggml.describe(device).kind == "cpu":
            offer(device, args.mem)
    endpoint = f"{args.host}:{args.port}"
    announce(endpoint, args.threads, args.cache, args.cache_size, devices)
    # llama.cpp's loop never returns to Python: let SIGINT end the process as SIGTERM does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    handles = (ctypes.c_void_p * len(devices))(*devices)
    start_server(endpoint.encode(), str(args.cache).encode(), args.threads, len(devices), handles)
    sys.exit(f"Error: the RPC server stopped: it could not listen on {endpoint} or accept a client")


if __name__ == "__main__":
    main(sys.argv[1:])
