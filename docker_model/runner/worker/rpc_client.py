"""A worker whose model lives on a pool of RPC servers (other machines' devices, through llama.cpp's RPC
backend): attaching their devices, watching the connections, and what each holds.

llama.cpp's RPC client has no timeouts and aborts the process on any failed exchange. So:
- a connection that goes silent must fail rather than hang, whether the worker is loading or decoding
  (`silent_peers.py`);
- the abort must say what happened: the worker exits with RPC_LOST_EXIT_CODE after one line naming
  the endpoints and llama.cpp's reason, which the runner turns into its answer to the client.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
from dataclasses import dataclass, field

from docker_model.runner.shared.exit_codes import RPC_LOST_EXIT_CODE

from . import ggml, silent_peers

# llama.cpp's line on each buffer it allocates: "load_tensors: RPC0[10.0.0.2:50052] model buffer size = 45.00 MiB"
_BUFFER_LINE = re.compile(
    r"RPC\d+\[(?P<endpoint>\S+?)\]\s+(?P<kind>model|KV|compute) buffer size =\s*(?P<mib>[\d.]+) MiB"
)
_KINDS = {"model": "model_bytes", "KV": "context_bytes", "compute": "compute_bytes"}


@dataclass
class RpcPool:
    """The RPC servers one model is spread over, in the order the runner gave them."""

    endpoints: list[str]
    split: list[float]  # fraction of the layers per endpoint; empty: by the servers' free memory
    devices: list[int] = field(default_factory=list)  # ggml device handles, attached
    device_endpoints: list[str] = field(default_factory=list)
    allocated: dict[str, dict[str, int]] = field(default_factory=dict)  # endpoint -> kind -> bytes
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self) -> None:
        """Register the servers' devices with the engine, and make their connections fail when silent."""
        _abort_with_endpoints(self.endpoints)
        silent_peers.watch_connections(silent_peers.to_endpoints(self.endpoints), "rpc-connections")
        for endpoint in self.endpoints:
            for handle in ggml.attach_rpc_servers([endpoint]):
                self.devices.append(handle)
                self.device_endpoints.append(endpoint)

    def device_array(self) -> ctypes.Array[ctypes.c_void_p]:
        """The NULL-terminated device list llama.cpp's model parameters take."""
        return (ctypes.c_void_p * (len(self.devices) + 1))(*self.devices, None)

    def tensor_split(self, slots: int) -> ctypes.Array[ctypes.c_float] | None:
        """Each device's fraction of the layers (an endpoint's fraction shared by its devices), or None for
        llama.cpp's default (by free memory)."""
        if not self.split:
            return None
        per_device = [
            self.split[self.endpoints.index(endpoint)] / self.device_endpoints.count(endpoint)
            for endpoint in self.device_endpoints
        ]
        return (ctypes.c_float * slots)(*per_device)

    def record(self, line: str) -> None:
        """Note a buffer llama.cpp allocated on one of the pool's devices, from its log line."""
        found = _BUFFER_LINE.search(line)
        if found is None or found["endpoint"] not in self.endpoints:
            return
        with self._lock:
            kinds = self.allocated.setdefault(found["endpoint"], {})
            key = _KINDS[found["kind"]]
            kinds[key] = kinds.get(key, 0) + round(float(found["mib"]) * 1024 * 1024)

    def report(self) -> list[dict[str, object]]:
        """What each endpoint holds, measured: `GET /health`'s `rpc` list."""
        with self._lock:
            return [
                {"endpoint": endpoint, **{key: self.allocated.get(endpoint, {}).get(key, 0) for key in _KINDS.values()}}
                for endpoint in self.endpoints
            ]


_ABORT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
# How llama.cpp's RPC client words a failed exchange or connection (ggml-rpc.cpp's aborts).
_RPC_FAILURES = (
    "Remote RPC server crashed",
    "Failed to connect to",
    "RPC handshake failed",
    "Failed to parse endpoint",
)
_installed: list[object] = []  # the callback must outlive its registration


def _abort_with_endpoints(endpoints: list[str]) -> None:
    """On llama.cpp's abort (a failed exchange with a server), say so in one line and exit with
    RPC_LOST_EXIT_CODE instead of dumping a backtrace and dying of SIGABRT."""
    set_callback = ggml.lib().ggml_set_abort_callback
    set_callback.restype, set_callback.argtypes = ctypes.c_void_p, [_ABORT_CALLBACK]

    @_ABORT_CALLBACK
    def lost(message: bytes | None) -> None:
        reason = re.sub(r"^\S+:\d+: ", "", (message or b"").decode("utf-8", "replace").strip())  # its source line
        if not reason.startswith(_RPC_FAILURES):  # another abort: say it, and let llama.cpp abort as it does
            sys.stderr.write(f"error: llama.cpp aborted: {reason}\n")
            sys.stderr.flush()
            return
        sys.stderr.write(f"error: lost the RPC server(s) {', '.join(endpoints)}: {reason}\n")
        sys.stderr.flush()
        os._exit(RPC_LOST_EXIT_CODE)

    _installed.append(lost)
    set_callback(lost)
