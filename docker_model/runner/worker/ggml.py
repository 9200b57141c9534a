"""The engine's device layer (ggml's backend registry), through ctypes: the devices this machine offers, and
llama.cpp's RPC backend, which makes the devices of other machines' RPC servers look like local GPUs.

llama-cpp-python binds llama.cpp's own API but not ggml's; the functions here come from the same shared
libraries it loaded (`lib/libggml.so` in its package), so that what is registered here is what llama.cpp
sees when it loads a model.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .bindings import lc

Function = TypeVar("Function")
_DEVICE_KINDS = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}  # enum ggml_backend_dev_type

REBUILD_WITH_RPC = (
    "the installed llama.cpp engine was built without its RPC backend; rebuild it with "
    "`CMAKE_ARGS=-DGGML_RPC=on pip install --force-reinstall --no-cache-dir llama-cpp-python` "
    "in docker-model's virtualenv, or run ./install.sh again"
)


class RpcUnavailable(RuntimeError):
    """The engine has no RPC backend."""


@functools.cache
def lib() -> ctypes.CDLL:
    """libggml, as llama-cpp-python loaded it (opening it again yields the same, already loaded, library)."""
    folder = Path(lc.__file__).parent / "lib"
    found = sorted(folder.glob("libggml.so*")) or sorted(folder.glob("libggml*.dylib"))
    if not found:
        raise OSError(f"no ggml library next to llama-cpp-python's ({folder})")
    ggml = ctypes.CDLL(str(found[0]))
    void_p, char_p, size = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    signatures: dict[str, tuple[type | None, list[type]]] = {
        "ggml_backend_dev_count": (size, []),
        "ggml_backend_dev_get": (void_p, [size]),
        "ggml_backend_dev_by_name": (void_p, [char_p]),
        "ggml_backend_dev_name": (char_p, [void_p]),
        "ggml_backend_dev_description": (char_p, [void_p]),
        "ggml_backend_dev_type": (ctypes.c_int, [void_p]),
        "ggml_backend_dev_memory": (None, [void_p, ctypes.POINTER(size), ctypes.POINTER(size)]),
        "ggml_backend_reg_by_name": (void_p, [char_p]),
        "ggml_backend_reg_get_proc_address": (void_p, [void_p, char_p]),
        "ggml_backend_reg_dev_count": (size, [void_p]),
        "ggml_backend_reg_dev_get": (void_p, [void_p, size]),
        "ggml_backend_device_register": (None, [void_p]),
    }
    for name, (result, arguments) in signatures.items():
        function = getattr(ggml, name)
        function.restype, function.argtypes = result, arguments
    return ggml


@dataclass(frozen=True)
class Device:
    """One device the engine can compute on, with its memory in bytes."""

    name: str
    description: str
    kind: str  # cpu, gpu, igpu or accel
    free: int
    total: int


def describe(device: int) -> Device:
    """The device whose handle (ggml_backend_dev_t) is `device`."""
    ggml = lib()
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    ggml.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
    return Device(
        name=ggml.ggml_backend_dev_name(device).decode(),
        description=ggml.ggml_backend_dev_description(device).decode(),
        kind=_DEVICE_KINDS.get(ggml.ggml_backend_dev_type(device), "other"),
        free=free.value,
        total=total.value,
    )


def local_devices() -> list[Device]:
    """The devices registered with the engine: this machine's, and RPC servers' once attached."""
    ggml = lib()
    return [describe(ggml.ggml_backend_dev_get(index)) for index in range(ggml.ggml_backend_dev_count())]


def rpc_registry() -> int:
    """The RPC backend's registry handle; RpcUnavailable when the engine was built without it."""
    registry = lib().ggml_backend_reg_by_name(b"RPC")
    if not registry:
        raise RpcUnavailable(REBUILD_WITH_RPC)
    return int(registry)


def rpc_available() -> bool:
    try:
        rpc_registry()
    except RpcUnavailable:
        return False
    return True


def rpc_function(name: str, prototype: Callable[[int], Function]) -> Function:
    """A function of the RPC backend, looked up by name in its registry (it is not exported otherwise);
    `prototype`: its ctypes.CFUNCTYPE."""
    address = lib().ggml_backend_reg_get_proc_address(rpc_registry(), name.encode())
    if not address:
        raise RpcUnavailable(f"the engine's RPC backend has no {name}")
    return prototype(address)


_ADD_SERVER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)


def attach_rpc_servers(addresses: list[str]) -> list[int]:
    """Register the devices of the RPC servers at `addresses` (host:port), in order, so that llama.cpp places
    layers on them as on local GPUs; returns their handles. Connects to each server; llama.cpp aborts the
    process when one does not answer, so the runner probes them first."""
    init_engine()
    ggml = lib()
    add_server = rpc_function("ggml_backend_rpc_add_server", _ADD_SERVER)
    attached = []
    for address in addresses:
        registry = add_server(address.encode())
        for index in range(ggml.ggml_backend_reg_dev_count(registry)):
            device = ggml.ggml_backend_reg_dev_get(registry, index)
            ggml.ggml_backend_device_register(device)
            attached.append(int(device))
    return attached


def init_engine() -> None:
    """Load the engine's backends (llama.cpp's backend initialisation) before its registry is used."""
    from .llama import init_backend

    init_backend()
