"""`docker model rpc-server`: llama.cpp's RPC server on this machine's devices, for another machine's runner.

The CLI checks the address, then starts the server process (`runner/worker/rpc_server.py`, engine code) in the
foreground or detached, and stops a detached one by its pid file. The RPC protocol has no authentication and
llama.cpp's server has had memory-safety bugs: it listens on loopback unless told otherwise, and never on a
wildcard address.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from socket import AF_INET

import click

from docker_model import runner_pid, settings
from docker_model.cli import runner_process
from docker_model.rpc_protocol import DEFAULT_RPC_PORT, Endpoint, RpcError, probe
from docker_model.units import parse_bytes

SERVER_MODULE = "docker_model.runner.worker.rpc_server"
RPC_SERVER = runner_pid.PidKind("rpc-server", SERVER_MODULE)
DEFAULT_CACHE_SIZE = "10G"
START_TIMEOUT_SECONDS = 60.0
STOPPED_BY = (-signal.SIGINT, -signal.SIGTERM, -signal.SIGHUP)
_ANNOUNCED = re.compile(r"[a-z][a-z-]*: ")  # the server's `key: value` lines, before llama.cpp's own
REMOTE_WARNING = (
    "Warning: this RPC server accepts connections from other machines on {host}:{port}. llama.cpp's RPC protocol "
    "has no authentication: anyone who reaches the port can run computations here and read or write what it holds, "
    "and prompts' activations cross the network in clear text. Use it only on a trusted network."
)


def checked_host(host: str, allow_remote: bool) -> str:
    """`host` when the server may listen there; click.ClickException with the reason else."""
    try:
        address = ipaddress.ip_address(host.strip().strip("[]") or "0.0.0.0")
    except ValueError:
        raise click.ClickException(
            f"--host {host!r} is not an IPv4 address: name one of this machine's addresses, like 127.0.0.1"
        ) from None
    if address.is_unspecified:
        raise click.ClickException(
            f"--host {host!r} is a wildcard: the server would listen on every network of this machine; "
            "name one interface's address (with --allow-remote), or leave --host out for loopback"
        )
    if address.version == 6:
        raise click.ClickException(f"--host {host}: llama.cpp's RPC server listens on IPv4 only; use an IPv4 address")
    if address.is_loopback:
        return str(address)
    if not allow_remote:
        raise click.ClickException(
            f"--host {host} is not loopback: the RPC protocol has no authentication, so other machines may reach "
            "it only with --allow-remote, on a trusted network"
        )
    ours = interface_addresses()
    if str(address) not in ours:
        raise click.ClickException(
            f"--host {host} is not an address of this machine (it has {', '.join(sorted(ours))}); name one of those"
        )
    return str(address)


def interface_addresses() -> set[str]:
    import psutil

    return {item.address for items in psutil.net_if_addrs().values() for item in items if item.family == AF_INET}


def server_command(host: str, port: int, options: dict[str, str]) -> list[str]:
    """The server process's command line: this Python, isolated (no folder where the user stands supplies code)."""
    argv = [sys.executable, "-I", "-u", "-m", SERVER_MODULE, "--host", host, "--port", str(port)]
    for name, value in options.items():
        argv += [f"--{name}", value]
    return argv


def size(option: str, text: str) -> str:
    try:
        count = parse_bytes(text)
    except ValueError as error:
        raise click.ClickException(f"{option}: {error}") from None
    if count <= 0:
        raise click.ClickException(f"{option} must be more than 0, like 8G")
    return str(count)


@click.command(name="rpc-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on (one of this machine's)")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_RPC_PORT, show_default=True)
@click.option("--threads", type=click.IntRange(1, 4096), help="CPU threads (default: half the cores)")
@click.option("--device", help="Devices to serve, comma-separated, as llama.cpp names them (default: GPUs, else CPU)")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), help="llama.cpp's tensor cache folder")
@click.option("--cache-size", default=DEFAULT_CACHE_SIZE, show_default=True, help="Cap of the tensor cache")
@click.option("--mem", help="The memory each served device offers, like 8G (default: all it has)")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (no authentication: trusted networks)")
@click.option("--detach", "-d", is_flag=True, help="Run in the background (stop it with --stop)")
@click.option("--stop", is_flag=True, help="Stop the detached server of --port")
@click.pass_context
def rpc_server(
    ctx: click.Context,
    host: str,
    port: int,
    threads: int | None,
    device: str | None,
    cache: Path | None,
    cache_size: str,
    mem: str | None,
    allow_remote: bool,
    detach: bool,
    stop: bool,
) -> None:
    """Serve this machine's devices to another machine's runner (llama.cpp's RPC server)."""
    if stop:
        given = [name for name in ctx.params if name not in ("stop", "port") and is_given(ctx, name)]
        if given:
            raise click.ClickException(f"--stop takes only --port, not --{given[0].replace('_', '-')}")
        if not runner_process.stop(port, RPC_SERVER):
            raise click.ClickException(f"no detached rpc-server of this user runs on port {port}")
        click.echo(f"RPC server on port {port} stopped")
        return
    host = checked_host(host, allow_remote)
    options = {
        "cache": str((cache or settings.state_dir() / "rpc-cache").expanduser().absolute()),  # the server runs in /
        "cache-size": size("--cache-size", cache_size),
        **({"threads": str(threads)} if threads else {}),
        **({"device": device} if device else {}),
        **({"mem": size("--mem", mem)} if mem else {}),
    }
    if not ipaddress.ip_address(host).is_loopback:
        click.echo(REMOTE_WARNING.format(host=host, port=port), err=True)
    argv = server_command(host, port, options)
    if detach:
        start_detached(argv, host, port)
    else:
        run_foreground(argv)


def is_given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)


def run_foreground(argv: list[str]) -> None:
    """Run the server until Ctrl-C (or SIGTERM, passed on): exit 0 then, its own status when it fails."""
    process = subprocess.Popen(argv, cwd="/")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda received, _frame: process.send_signal(received))
    try:
        returncode = process.wait()
    except KeyboardInterrupt:  # the terminal's Ctrl-C reached the server too: let it finish
        process.send_signal(signal.SIGINT)
        returncode = process.wait()
    if returncode in STOPPED_BY or returncode == 0:
        return
    if returncode < 0:
        raise click.ClickException(f"the RPC server crashed ({signal.Signals(-returncode).name})")
    sys.exit(returncode)  # it said why on stderr


def log_path(port: int) -> Path:
    return settings.state_dir() / "logs" / f"rpc-server-{port}.log"


def start_detached(argv: list[str], host: str, port: int) -> None:
    """Start the server in a session of its own, wait until it answers a probe, then record its pid file."""
    from docker_model.files import PRIVATE_DIR, log_tail, make_dirs

    running = runner_pid.live_runner(port, RPC_SERVER)
    if running is not None:
        raise click.ClickException(
            f"an rpc-server already runs on port {port} (pid {running.pid}); stop it with "
            f"`docker model rpc-server --stop --port {port}`"
        )
    log = log_path(port)
    try:
        make_dirs(log.parent, PRIVATE_DIR)
        output = os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
    except OSError as error:
        raise click.ClickException(str(runner_process.StateDirError(error))) from None
    with output:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd="/"
        )
    failure = wait_serving(process, Endpoint(host, port))
    if failure is not None:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise click.ClickException(f"{failure}; its log ({log}) ends:\n{log_tail(log)}")
    runner_pid.write_pid_file(port, RPC_SERVER, pid=process.pid)
    for line in log.read_text(errors="replace").splitlines():
        if not _ANNOUNCED.match(line):
            break
        click.echo(line)
    click.echo(f"RPC server running in the background on {host}:{port} (pid {process.pid}, log {log})")


def wait_serving(process: subprocess.Popen[bytes], endpoint: Endpoint) -> str | None:
    """None once the server answers a probe; else why it does not. Until it exits, a failed probe may be the
    server still starting, or another program on the port that the server is about to find there."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    failure = "nothing answered"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"the RPC server exited with status {process.returncode}"
        try:
            probe(endpoint, timeout=2.0)
            return None
        except RpcError as error:
            failure = str(error)
            time.sleep(0.1)
    return f"the RPC server did not answer within {START_TIMEOUT_SECONDS:g}s ({failure})"
