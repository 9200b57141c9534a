"""llama.cpp's RPC protocol as far as docker-model speaks it: the endpoints of a pool, the protocol version
of the installed engine, and a probe that asks a server for its version and its devices' memory.

Hallway code: the CLI and the runner both use it; it never imports the engine. A request on the wire is one
command byte, its input's size (u64, little-endian) and the input; an answer is its size (u64) and the
payload. A server serves one client at a time: another client's connection waits in its backlog unanswered.
"""

from __future__ import annotations

import functools
import re
import socket
import struct
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from docker_model.units import parse_bytes

DEFAULT_RPC_PORT = 50052
MAX_SERVERS = 16  # GGML_RPC_MAX_SERVERS, and llama.cpp's most devices for one model
ENGINE_DISTRIBUTION = "llama_cpp_python"
CMD_GET_DEVICE_MEMORY = 11
CMD_HELLO = 14
CMD_DEVICE_COUNT = 15
CONN_CAPS_SIZE = 24  # transport capabilities in the hello; all zero: plain TCP, no upgrade
HELLO_ANSWER = struct.Struct("<BBBx")  # major, minor, patch, padding; then the server's capabilities


@dataclass(frozen=True)
class Endpoint:
    """An RPC server of a pool; `cap` bounds the bytes a model may place there (None: what it offers)."""

    host: str
    port: int
    cap: int | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DeviceMemory:
    free: int
    total: int


@dataclass(frozen=True)
class Probed:
    """What a server answered: its protocol version and each of its devices' memory, in bytes."""

    version: tuple[int, int, int]
    devices: tuple[DeviceMemory, ...]


class RpcError(Exception):
    """An RPC server cannot serve this engine; the message names the endpoint and the fix."""


class RpcUnreachable(RpcError):
    """Nothing accepted the connection: refused, no route, or the connect timed out."""


class RpcBusy(RpcError):
    """The connection was accepted but the server did not answer in time: another client holds it, or it hangs."""


class RpcProtocolMismatch(RpcError):
    """The server speaks a protocol version this engine cannot use."""


_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_SYNTAX = "HOST:PORT[@SIZE][,HOST:PORT[@SIZE]...], like 192.168.1.20:50052@8G"


def parse_endpoints(text: str) -> tuple[Endpoint, ...]:
    """The endpoints of `HOST:PORT[@SIZE][,...]`; ValueError with a one-line reason."""
    if not text.strip():
        raise ValueError(f"no RPC endpoint given: use {_SYNTAX}")
    endpoints = tuple(_endpoint(item.strip()) for item in text.split(","))
    if len(endpoints) > MAX_SERVERS:
        raise ValueError(f"{len(endpoints)} RPC endpoints: llama.cpp takes at most {MAX_SERVERS} servers for a model")
    addresses = [endpoint.address for endpoint in endpoints]
    for address in addresses:
        if addresses.count(address) > 1:
            raise ValueError(f"RPC endpoint {address} is listed twice: a server serves one client at a time")
    return endpoints


def _endpoint(item: str) -> Endpoint:
    if not item:
        raise ValueError(f"empty RPC endpoint in the list: use {_SYNTAX}")
    where, at, size = item.partition("@")
    cap = None
    if at:
        try:
            cap = parse_bytes(size)
        except ValueError as error:
            raise ValueError(f"RPC endpoint {item!r}: {error}") from None
        if cap <= 0:
            raise ValueError(f"RPC endpoint {item!r}: the size after @ must be more than 0")
    host, colon, port = where.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"RPC endpoint {item!r} needs a port from 1 to 65535: use {_SYNTAX}")
    if host.startswith("[") or ":" in host:
        raise ValueError(
            f"RPC endpoint {item!r}: llama.cpp's RPC backend connects over IPv4 only; "
            "use an IPv4 address or a host name"
        )
    if not _HOST.fullmatch(host):
        raise ValueError(f"RPC endpoint {item!r} has no valid host name or IPv4 address: use {_SYNTAX}")
    return Endpoint(host, int(port), cap)


@functools.cache
def bundled_protocol() -> tuple[int, int, int]:
    """The RPC protocol version (major, minor, patch) of the installed engine, read from the ggml-rpc.h that
    was installed with it (so that the CLI learns it without loading the engine)."""
    header = _engine_header("ggml-rpc.h")
    text = header.read_text()
    parts = [re.search(rf"#define\s+RPC_PROTO_{part}_VERSION\s+(\d+)", text) for part in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        raise RuntimeError(f"{header} does not define the RPC protocol version: reinstall llama-cpp-python")
    major, minor, patch = (int(match[1]) for match in parts if match)
    return major, minor, patch


def _engine_header(name: str) -> Path:
    try:
        files = metadata.files(ENGINE_DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        raise RuntimeError("llama-cpp-python is not installed: reinstall docker-model with ./install.sh") from None
    for file in files:
        if file.name == name:
            return Path(str(file.locate()))
    raise RuntimeError(f"the installed llama-cpp-python has no {name}: reinstall it with ./install.sh")


def version_text(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def compatible(theirs: tuple[int, int, int], ours: tuple[int, int, int]) -> bool:
    """As llama.cpp's client decides: the same major version, and a minor version no newer than ours."""
    return theirs[0] == ours[0] and theirs[1] <= ours[1]


def probe(endpoint: Endpoint, timeout: float = 3.0) -> Probed:
    """Connect, say hello, and ask for the devices' memory, all within `timeout` seconds; RpcError else."""
    deadline = time.monotonic() + timeout
    address = endpoint.address
    try:
        connection = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise RpcUnreachable(
            f"RPC server {address} is unreachable ({reason}): start `docker model rpc-server` there, or fix the address"
        ) from None
    with connection:
        session = _Session(connection, address, deadline, timeout)
        answer = session.request(CMD_HELLO, bytes(CONN_CAPS_SIZE))
        if len(answer) != HELLO_ANSWER.size + CONN_CAPS_SIZE:
            raise RpcProtocolMismatch(
                f"RPC server {address} answered the hello with {len(answer)} bytes, not "
                f"{HELLO_ANSWER.size + CONN_CAPS_SIZE}: it speaks another RPC protocol; {_SAME_BUILD}"
            )
        version = HELLO_ANSWER.unpack_from(answer)
        ours = bundled_protocol()
        if not compatible(version, ours):
            raise RpcProtocolMismatch(
                f"RPC server {address} speaks RPC protocol {version_text(version)}, this engine "
                f"{version_text(ours)}; {_SAME_BUILD}"
            )
        (count,) = struct.unpack("<I", session.request(CMD_DEVICE_COUNT, b"", answer_size=4))
        devices = tuple(
            DeviceMemory(*struct.unpack("<QQ", session.request(CMD_GET_DEVICE_MEMORY, struct.pack("<I", index), 16)))
            for index in range(count)
        )
    return Probed(version, devices)


_SAME_BUILD = "run the same docker-model release (and so the same llama.cpp) on both machines"


class _Session:
    """Requests on one connection, each answered before the probe's deadline."""

    def __init__(self, connection: socket.socket, address: str, deadline: float, timeout: float) -> None:
        self.connection, self.address, self.deadline, self.timeout = connection, address, deadline, timeout

    def request(self, command: int, payload: bytes, answer_size: int | None = None) -> bytes:
        try:
            self._remaining()
            self.connection.sendall(struct.pack("<BQ", command, len(payload)) + payload)
            (size,) = struct.unpack("<Q", self._receive(8))
            if answer_size is not None and size != answer_size:
                raise RpcError(
                    f"RPC server {self.address} answered command {command} with {size} bytes, not {answer_size}: "
                    f"it is not an RPC server of this protocol version; {_SAME_BUILD}"
                )
            return self._receive(min(size, 4096))
        except TimeoutError:
            raise RpcBusy(
                f"RPC server {self.address} accepted the connection but did not answer within {self.timeout:g}s: "
                "another client is using it (a server serves one at a time); stop that client or use another server"
            ) from None
        except OSError as error:
            raise RpcError(
                f"RPC server {self.address} broke off the probe ({error}); check that it is an RPC server and up"
            ) from None

    def _remaining(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.connection.settimeout(left)

    def _receive(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            self._remaining()
            chunk = self.connection.recv(size - len(data))
            if not chunk:
                raise RpcProtocolMismatch(
                    f"RPC server {self.address} closed the connection without answering: it is not an RPC server "
                    f"of this protocol version; {_SAME_BUILD}"
                )
            data += chunk
        return data
