"""TCP connections that fail, rather than hang, when the machine at the other end goes silent.

llama.cpp's RPC client and server block on their sockets with no timeout. A peer that vanishes without a
word (its link down, a firewall dropping packets, a machine powered off) would hold a worker's request, or
a server's only client slot, forever. The kernel can tell instead: a TCP user timeout breaks a connection
whose data stays unacknowledged, and keepalives break one whose peer stops answering while nothing is sent.
The sockets belong to C code, so a thread finds them by address and sets the options through a duplicate
descriptor, soon after each one opens.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

SILENT_PEER_SECONDS = 8  # a peer silent this long (plus one keepalive interval) counts as gone
_KEEPALIVE_SECONDS = 1
_LOOK_EVERY_SECONDS = 0.2

Match = Callable[[Any], bool]  # given one of psutil's connections of this process


def watch_connections(matches: Match, name: str) -> None:
    """From now on, give each TCP connection of this process that `matches` the timeouts, in a thread."""

    def watch() -> None:
        done: set[tuple[int, int]] = set()
        while True:
            try:
                done = harden(matches, done)
            except Exception as error:  # never let the watch end: later connections would go unguarded
                sys.stderr.write(f"warning: could not set timeouts on connections: {error}\n")
            time.sleep(_LOOK_EVERY_SECONDS)

    threading.Thread(target=watch, name=name, daemon=True).start()


def harden(matches: Match, done: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Set the timeouts on the connections that match, except those in `done` (by local and remote port);
    returns the ports of all that match now."""
    import psutil

    seen = set()
    for connection in psutil.Process().net_connections(kind="tcp"):
        if connection.fd < 0 or not connection.raddr or not matches(connection):
            continue
        ports = (connection.laddr.port, connection.raddr.port)
        seen.add(ports)
        if ports not in done:
            try:
                with socket.socket(fileno=os.dup(connection.fd)) as sock:
                    _set_timeouts(sock)
            except OSError:  # closed (or its descriptor reused) since it was listed: nothing to guard
                seen.discard(ports)
    return seen


def _set_timeouts(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_USER_TIMEOUT", SILENT_PEER_SECONDS * 1000),
        ("TCP_KEEPIDLE", _KEEPALIVE_SECONDS),
        ("TCP_KEEPINTVL", _KEEPALIVE_SECONDS),
        ("TCP_KEEPCNT", SILENT_PEER_SECONDS),
    ):
        if hasattr(socket, option):  # Linux has them all; elsewhere, what the platform offers
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def to_endpoints(endpoints: list[str]) -> Match:
    """Connections to any of `endpoints` (host:port, the host resolved as the engine resolves it: IPv4, any of
    its addresses)."""
    wanted = set()
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        for *_, address in socket.getaddrinfo(host.strip("[]"), int(port), socket.AF_INET, socket.SOCK_STREAM):
            wanted.add((ipaddress.ip_address(address[0]), int(port)))
    return lambda connection: (ipaddress.ip_address(connection.raddr.ip), connection.raddr.port) in wanted


def accepted_on(port: int) -> Match:
    """Connections a server accepted on its `port`."""
    return lambda connection: connection.laddr.port == port
