"""The RPC protocol's hallway code, fast: endpoint lists, version rules, and the probe's errors against a closed
port and a server of another protocol version (the real server's answers are in test_rpc_server.py)."""

from __future__ import annotations

import socket
import time

import pytest

from docker_model.rpc_protocol import (
    Endpoint,
    RpcProtocolMismatch,
    RpcUnreachable,
    bundled_protocol,
    compatible,
    parse_endpoints,
    probe,
)
from tests.fixtures.rpc_fixtures import wrong_version_rpc_server


def test_endpoint_lists_parse_with_their_caps() -> None:
    assert parse_endpoints("127.0.0.1:50052") == (Endpoint("127.0.0.1", 50052, None),)
    assert parse_endpoints(" gpu-box.lan:50052@512M , 10.0.0.2:50053@2GiB") == (
        Endpoint("gpu-box.lan", 50052, 512_000_000),
        Endpoint("10.0.0.2", 50053, 2 * 1024**3),
    )


def test_an_endpoint_address_is_host_and_port() -> None:
    assert Endpoint("10.0.0.2", 50052, 10).address == "10.0.0.2:50052"
    assert Endpoint("fd00::2", 50052).address == "[fd00::2]:50052"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no RPC endpoint given"),
        ("10.0.0.2", "needs a port"),
        ("10.0.0.2:0", "needs a port from 1 to 65535"),
        ("10.0.0.2:70000", "needs a port"),
        ("10.0.0.2:http", "needs a port"),
        ("[::1]:50052", "IPv4 only"),
        ("fd00::2:50052", "IPv4 only"),
        ("10.0.0.2:50052@", "invalid size ''"),
        ("10.0.0.2:50052@0", "more than 0"),
        ("10.0.0.2:50052@lots", "invalid size 'lots'"),
        ("10.0.0.2:50052,,10.0.0.3:50052", "empty RPC endpoint"),
        ("10.0.0.2:50052,10.0.0.2:50052@1G", "listed twice"),
        ("bad_host!:50052", "no valid host name"),
        (":50052", "no valid host name"),
    ],
)
def test_bad_endpoint_lists_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r"RPC endpoint|no RPC endpoint") as refused:
        parse_endpoints(text)
    assert problem in str(refused.value)
    assert "\n" not in str(refused.value)


def test_versions_are_compatible_as_llama_cpp_decides() -> None:
    assert compatible((3, 2, 9), (3, 2, 0))
    assert compatible((3, 1, 0), (3, 2, 0))  # an older minor version: the server lacks nothing we send
    assert not compatible((3, 3, 0), (3, 2, 0))
    assert not compatible((2, 2, 0), (3, 2, 0))


def test_the_bundled_protocol_is_the_installed_headers() -> None:
    major, minor, patch = bundled_protocol()
    assert major >= 3  # the hello with a version exists since protocol 3
    assert all(isinstance(part, int) for part in (minor, patch))


def test_a_closed_port_is_unreachable_at_once() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        endpoint = Endpoint("127.0.0.1", holder.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(RpcUnreachable, match=r"is unreachable .*refused.*docker model rpc-server") as refused:
            probe(endpoint, timeout=3)
    assert time.monotonic() - started < 3  # refused, not timed out
    assert endpoint.address in str(refused.value)


@pytest.mark.parametrize("offset", [(1, 0, 0), (0, 1, 0)])
def test_a_server_of_another_protocol_version_is_named_as_such(offset: tuple[int, int, int]) -> None:
    ours = bundled_protocol()
    theirs = (ours[0] + offset[0], ours[1] + offset[1], ours[2])
    with wrong_version_rpc_server(theirs) as endpoint, pytest.raises(RpcProtocolMismatch) as refused:
        probe(endpoint, timeout=3)
    message = str(refused.value)
    assert f"{endpoint.address} speaks RPC protocol {'.'.join(map(str, theirs))}" in message
    assert f"this engine {'.'.join(map(str, ours))}" in message
    assert "same docker-model release" in message
