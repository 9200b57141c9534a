"""Where the runner listens, and what each address lets callers do without the runner's token.

The runner always answers on loopback, where the CLI finds it. It may listen on one more address: the
Docker bridge's (containers reach the host through it), a wildcard (every address) or any other one of
this machine. The kind of address sets the default of which routes need the token (SPEC: loopback none,
the bridge management, anything else all); `DOCKER_MODEL_REQUIRE_TOKEN` sets one scope for every address.
A runner on loopback only can open the bridge later, for Compose (`open_bridge`).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from docker_model import settings
from docker_model.api_types import ListenerInfo
from docker_model.settings import TokenScope

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
AddressKind = Literal["loopback", "bridge", "wildcard", "other"]
DEFAULT_SCOPES: dict[AddressKind, TokenScope] = {
    "loopback": "none",
    "bridge": "management",
    "wildcard": "all",
    "other": "all",
}


class ListenError(Exception):
    """An address the runner cannot listen on; the message names it and the way out."""


def bridge_address(interface: str | None) -> str | None:
    """The IPv4 address of `interface` when it is a Linux bridge (as Docker's `docker0` is), else None."""
    if interface is None or not Path(f"/sys/class/net/{interface}/bridge").is_dir():
        return None
    import psutil

    for address in psutil.net_if_addrs().get(interface, []):
        if address.family == socket.AF_INET:
            return str(address.address)
    return None


def kind_of(address: str, bridge: str | None) -> AddressKind:
    ip = ipaddress.ip_address(address)
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "wildcard"
    return "bridge" if address == bridge else "other"


def bind(address: str, port: int) -> socket.socket:
    """A listening TCP socket on `address`:`port`, inheritable by the server."""
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRNOTAVAIL:
            way_out = "choose an address this machine has with --host or MODEL_RUNNER_BIND"
        else:
            way_out = "stop what uses that port or choose another with MODEL_RUNNER_PORT"
        raise ListenError(f"cannot listen on {address}:{port}: {error.strerror or error}; {way_out}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    kind: AddressKind
    token_scope: TokenScope
    tls: bool

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def describe(self) -> ListenerInfo:
        return {"url": self.url, "kind": self.kind, "token": self.token_scope}


@dataclass
class Listeners:
    """The runner's addresses; `serving(local_address)` finds the one a connection came in on."""

    port: int
    tls: bool
    scope_setting: TokenScope | None
    bridge_interface: str | None
    items: list[Listener] = field(default_factory=list)
    start_serving: Callable[[socket.socket], Awaitable[None]] | None = None  # set once the server runs

    @classmethod
    def plan(cls, extra: str | None, port: int, tls: bool) -> Listeners:
        """Loopback, plus `extra` (a wildcard instead of loopback: it covers loopback too)."""
        listeners = cls(port, tls, settings.token_scope(), settings.bridge_interface())
        bridge = bridge_address(listeners.bridge_interface)
        addresses = [] if extra is not None and kind_of(extra, None) == "wildcard" else [LOOPBACK]
        if extra is not None and extra not in addresses:
            addresses.append(extra)
        for address in addresses:
            listeners.add(address, kind_of(address, bridge))
        return listeners

    def add(self, address: str, kind: AddressKind) -> Listener:
        listener = Listener(address, self.port, kind, self.scope_setting or DEFAULT_SCOPES[kind], self.tls)
        if listener.token_scope == "none" and kind != "loopback":
            log.warning("%s answers every route without a token (DOCKER_MODEL_REQUIRE_TOKEN=none)", listener.url)
        self.items.append(listener)
        return listener

    def serving(self, local_address: str | None) -> Listener:
        """The listener of a connection whose local end is `local_address` (a wildcard's, if none matches)."""
        for listener in self.items:
            if listener.address == local_address:
                return listener
        wildcard = [listener for listener in self.items if listener.kind == "wildcard"]
        return wildcard[0] if wildcard else self.items[0]

    def container_url(self) -> str | None:
        """The address containers reach this runner at: the bridge's (directly, or through a wildcard)."""
        for listener in self.items:
            if listener.kind == "bridge":
                return listener.url
        bridge = bridge_address(self.bridge_interface)
        if bridge is not None and any(listener.kind == "wildcard" for listener in self.items):
            return Listener(bridge, self.port, "bridge", "all", self.tls).url
        return None

    async def open_bridge(self) -> Listener:
        """Listen on the Docker bridge too (for Compose's containers); the listener, if it already does."""
        for listener in self.items:
            if listener.kind in ("bridge", "wildcard"):
                return listener
        if self.bridge_interface is None:
            raise ListenError("DOCKER_MODEL_BRIDGE=none forbids opening the runner to containers")
        bridge = bridge_address(self.bridge_interface)
        if bridge is None:
            raise ListenError(
                f"there is no network bridge {self.bridge_interface} on this machine (Docker's engine creates "
                "docker0): containers cannot reach the runner; name another with DOCKER_MODEL_BRIDGE"
            )
        if self.start_serving is None:
            raise ListenError("this runner cannot open more addresses: restart it with --host " + bridge)
        await self.start_serving(bind(bridge, self.port))
        return self.add(bridge, "bridge")
