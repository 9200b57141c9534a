"""A pooled worker's bookkeeping: what each RPC server holds, read from llama.cpp's buffer lines, and each
device's share of the layers. (Loading over real RPC servers is tested in tests/rpc/.)"""

from __future__ import annotations

import pytest

from docker_model.runner.worker.rpc_client import RpcPool


def test_buffer_lines_add_up_per_endpoint_and_kind() -> None:
    pool = RpcPool(["10.0.0.2:50052", "[fd00::3]:50052"], [])
    for line in (
        "load_tensors: RPC0[10.0.0.2:50052] model buffer size =    45.50 MiB\n",
        "load_tensors:   CPU_Mapped model buffer size =    20.00 MiB\n",  # this machine's: not the pool's
        "llama_kv_cache: RPC0[[fd00::3]:50052] KV buffer size =    12.00 MiB\n",
        "llama_kv_cache: RPC0[10.0.0.2:50052] KV buffer size =     4.00 MiB\n",
        "sched_reserve: RPC0[10.0.0.2:50052] compute buffer size =     1.25 MiB\n",
        "load_tensors: RPC0[10.9.9.9:50052] model buffer size =    99.00 MiB\n",  # not in this pool
    ):
        pool.record(line)
    mib = 1024 * 1024
    assert pool.report() == [
        {
            "endpoint": "10.0.0.2:50052",
            "model_bytes": 45.5 * mib,
            "context_bytes": 4 * mib,
            "compute_bytes": 1.25 * mib,
        },
        {"endpoint": "[fd00::3]:50052", "model_bytes": 0, "context_bytes": 12 * mib, "compute_bytes": 0},
    ]


def test_an_endpoints_share_is_divided_among_its_devices() -> None:
    pool = RpcPool(["a:1", "b:2"], [0.25, 0.75])
    pool.devices, pool.device_endpoints = [11, 12, 13], ["a:1", "b:2", "b:2"]
    split = pool.tensor_split(16)
    assert split is not None and len(split) == 16
    assert list(split)[:4] == pytest.approx([0.25, 0.375, 0.375, 0.0])
    assert list(pool.device_array()) == [11, 12, 13, None]


def test_no_split_given_leaves_it_to_llama_cpp() -> None:
    assert RpcPool(["a:1"], []).tensor_split(16) is None
