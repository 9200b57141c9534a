"""A TCP proxy that delays every chunk by a fixed time in each direction: network latency where netem is not
available (this kernel has none). Bytes keep flowing while earlier ones wait (a delay line, not a throttle), so
what it adds is latency, as a longer cable would, and a round trip through it takes twice the one-way delay.

    .venv/bin/python benchmarks/delay_proxy.py --target 127.0.0.1:50052 --one-way-ms 1 [--port 0]

prints `listening on HOST:PORT` once it accepts connections, then serves until killed. Each direction of each
connection has a reader thread, which stamps a chunk with the time it is due, and a writer thread, which sends it
then: `time.sleep` is precise to tens of microseconds, asyncio's timers only to a millisecond.
"""

from __future__ import annotations

import argparse
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

CHUNK = 1 << 16


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _delay_line(source: socket.socket, sink: socket.socket, delay: float) -> None:
    """Copy `source` to `sink`, each chunk `delay` seconds after it arrived; its end, or an error, closes both
    (the RPC protocol never half-closes)."""
    chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def read() -> None:
        try:
            while data := source.recv(CHUNK):
                chunks.put((time.monotonic() + delay, data))
        except OSError:
            pass
        chunks.put((time.monotonic() + delay, b""))

    def write() -> None:
        try:
            while True:
                due, data = chunks.get()
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        _close(source, sink)

    for work in (read, write):
        threading.Thread(target=work, daemon=True).start()


def serve(listener: socket.socket, target: tuple[str, int], delay: float) -> None:
    """Accept connections on `listener` forever, each relayed to `target` through two delay lines."""
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(target)
        except OSError:
            client.close()  # the target is down: the client sees its connection closed, as with no proxy
            continue
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as ggml-rpc sets on its own sockets
        _delay_line(client, upstream, delay)
        _delay_line(upstream, client, delay)


@contextmanager
def delayed(target: str, one_way_ms: float, host: str = "127.0.0.1") -> Iterator[str]:
    """A proxy process in front of `target` (host:port) adding `one_way_ms` each way; yields its host:port."""
    argv = [sys.executable, __file__, "--target", target, "--one-way-ms", str(one_way_ms), "--host", host]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the delaying proxy did not start (exit status {process.wait()})")
        yield line.removeprefix("listening on ").strip()
    finally:
        process.kill()
        process.wait()


def round_trip_ms(one_way_ms: float, samples: int = 200) -> float:
    """The median round trip, in ms, of 64 bytes through a proxy adding `one_way_ms` to an echo server here: what
    the proxy really adds (its own relay and the sleeps' overshoot included)."""
    echo = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        connection, _ = echo.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with connection:
            while data := connection.recv(CHUNK):
                connection.sendall(data)

    threading.Thread(target=answer, daemon=True).start()
    times = []
    with echo, delayed(f"127.0.0.1:{echo.getsockname()[1]}", one_way_ms) as address:
        client = socket.create_connection(_split(address))
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with client:
            for _ in range(samples):
                start = time.perf_counter()
                client.sendall(bytes(64))
                received = 0
                while received < 64:
                    received += len(client.recv(64 - received))
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to relay to")
    parser.add_argument("--one-way-ms", type=float, required=True, help="delay added in each direction")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    args = parser.parse_args(argv)
    listener = socket.create_server((args.host, args.port))
    print(f"listening on {args.host}:{listener.getsockname()[1]}", flush=True)
    serve(listener, _split(args.target), args.one_way_ms / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
