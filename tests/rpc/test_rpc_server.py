"""`docker model rpc-server`: llama.cpp's RPC server on this machine, started, probed and stopped as a user does.

The command runs as `python -m docker_model.cli rpc-server` (what the plugin runs once the docker CLI has passed
the arguments on), not through `docker`, so that these tests need no installed plugin. Refusals that come before
any process starts are checked in-process; everything else starts the real server on a free loopback port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from docker_model import __version__, runner_pid
from docker_model.cli import rpc_server as rpc_cli
from docker_model.cli.main import cli
from docker_model.rpc_protocol import (
    CMD_HELLO,
    CONN_CAPS_SIZE,
    DeviceMemory,
    Endpoint,
    RpcBusy,
    RpcError,
    RpcUnreachable,
    bundled_protocol,
    probe,
    version_text,
)
from tests.fixtures.registry import free_port
from tests.fixtures.rpc_servers import RpcServer, rpc_server
from tests.fixtures.waiting import wait_until

OFFER = 1_000_000_000  # --mem 1G


@pytest.fixture
def no_server_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refused command started a process")

    monkeypatch.setattr(rpc_cli.subprocess, "Popen", refuse)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--host", "0.0.0.0"], "--host '0.0.0.0' is a wildcard"),
        (["--host", "0.0.0.0", "--allow-remote"], "--host '0.0.0.0' is a wildcard"),
        (["--host", "::", "--allow-remote"], "--host '::' is a wildcard"),
        (["--host", "[::]"], "is a wildcard"),
        (["--host", ""], "--host '' is a wildcard"),
        (["--host", "203.0.113.7"], "--host 203.0.113.7 is not loopback: the RPC protocol has no authentication"),
        (["--host", "203.0.113.7", "--allow-remote"], "--host 203.0.113.7 is not an address of this machine"),
        (["--host", "::1"], "listens on IPv4 only"),
        (["--host", "rpc.example"], "is not an IPv4 address"),
        (["--mem", "lots"], "--mem: invalid size 'lots'"),
        (["--mem", "0"], "--mem must be more than 0"),
        (["--cache-size", "10 apples"], "--cache-size: invalid size"),
        (["--stop", "--mem", "1G"], "--stop takes only --port, not --mem"),
    ],
)
def test_refusals_name_the_reason_before_any_process_starts(
    no_server_starts: None, args: list[str], problem: str
) -> None:
    result = CliRunner().invoke(cli, ["rpc-server", *args])
    assert result.exit_code == 1
    assert problem in result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_the_engine_has_its_rpc_backend() -> None:
    """Fails, never skips: docker-model builds llama.cpp with RPC, and this names the way back."""
    from docker_model.runner.worker import ggml

    ggml.init_engine()
    assert ggml.rpc_available(), ggml.REBUILD_WITH_RPC


def test_an_engine_without_rpc_makes_the_server_say_how_to_rebuild(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from docker_model.runner.worker import ggml, rpc_server

    def missing() -> int:
        raise ggml.RpcUnavailable(ggml.REBUILD_WITH_RPC)

    monkeypatch.setattr(ggml, "rpc_registry", missing)
    monkeypatch.setattr(rpc_server, "keep_pruning", lambda folder, cap: None)
    arguments = ["--host", "127.0.0.1", "--port", str(free_port()), "--cache", str(tmp_path), "--cache-size", "1000"]
    with pytest.raises(SystemExit) as exited:
        rpc_server.main(arguments)
    assert "CMAKE_ARGS=-DGGML_RPC=on pip install --force-reinstall --no-cache-dir llama-cpp-python" in str(exited.value)
    assert "./install.sh" in str(exited.value)


def test_the_cache_keeps_its_most_recently_used_files_within_the_cap(tmp_path: Path) -> None:
    from docker_model.runner.worker.rpc_server import prune_cache

    write_cache_files(tmp_path, ["notes.txt", OLD, MIDDLE, NEW])  # the oldest of all: not llama.cpp's, kept
    removed = prune_cache(tmp_path, 2 * 1000 + 500)
    assert removed == [tmp_path / OLD]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([MIDDLE, NEW, "notes.txt"])


OLD, MIDDLE, NEW = "00000000000000a1", "00000000000000b2", "00000000000000c3"  # as llama.cpp names them: hashes


def write_cache_files(folder: Path, names: list[str], size: int = 1000) -> None:
    """Files of `size` bytes, last used in the order of `names` (the first the longest ago)."""
    now = time.time()
    for age, name in zip(range(len(names), 0, -1), names, strict=True):
        path = folder / name
        path.write_bytes(bytes(size))
        os.utime(path, (now - 100 * age, now - 100 * age))


# Everything below starts real processes.


def rpc_server_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "docker_model.cli", "rpc-server", *args]


def run_cli(state_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DOCKER_MODEL_STATE_DIR": str(state_dir)}
    return subprocess.run(
        rpc_server_command(*args), env=environment, capture_output=True, text=True, timeout=120, cwd=cwd
    )


def announced(output: str) -> dict[str, list[str]]:
    """The server's `key: value` lines, by key (one `device` line per device)."""
    lines: dict[str, list[str]] = {}
    for key, value in re.findall(r"^([a-z][a-z-]*): (.*)$", output, re.MULTILINE):
        lines.setdefault(key, []).append(value)
    return lines


def answers(endpoint: Endpoint) -> bool:
    try:
        probe(endpoint, timeout=2)
    except RpcError:
        return False
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RpcServer]:
    """One server on loopback offering 1G on its device."""
    with rpc_server(tmp_path_factory.mktemp("rpc"), port=free_port(), options=["--mem", "1G"]) as running:
        yield running


@pytest.fixture
def state_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory for the commands run here and for this process's view of the pid files."""
    state = tmp_path / "state"
    monkeypatch.setenv("DOCKER_MODEL_STATE_DIR", str(state))
    return state


@pytest.mark.integration
def test_the_server_announces_its_endpoint_protocol_version_and_devices(server: RpcServer) -> None:
    lines = announced(server.log_path.read_text())
    assert lines["endpoint"] == [server.endpoint.address]
    assert lines["protocol"] == [version_text(bundled_protocol())]
    assert lines["docker-model"] == [__version__]
    assert int(lines["threads"][0]) >= 1
    assert lines["device"], "no device line"
    for line in lines["device"]:
        assert f" free={OFFER} total={OFFER} " in line


@pytest.mark.integration
def test_a_probe_gets_the_announced_protocol_and_the_offer(server: RpcServer) -> None:
    lines = announced(server.log_path.read_text())
    probed = probe(server.endpoint)
    assert probed.version == bundled_protocol()
    assert version_text(probed.version) == lines["protocol"][0]
    assert probed.devices == (DeviceMemory(OFFER, OFFER),) * len(lines["device"])


@pytest.mark.integration
def test_a_server_held_by_another_client_is_busy_within_the_timeout(server: RpcServer) -> None:
    with socket.create_connection((server.endpoint.host, server.endpoint.port), timeout=10) as holder:
        holder.sendall(struct.pack("<BQ", CMD_HELLO, CONN_CAPS_SIZE) + bytes(CONN_CAPS_SIZE))
        holder.recv(8, socket.MSG_WAITALL)  # answered: this connection is the server's client now
        started = time.monotonic()
        with pytest.raises(RpcBusy, match=r"did not answer within 1\.5s: another client is using it") as busy:
            probe(server.endpoint, timeout=1.5)
        assert time.monotonic() - started < 1.5 + 1.0  # within the timeout (and its rounding)
        assert server.endpoint.address in str(busy.value)
    assert wait_until(lambda: answers(server.endpoint)), "the server did not serve again once the client left"


@pytest.mark.integration
def test_ctrl_c_stops_the_foreground_server_with_success(tmp_path: Path) -> None:
    port = free_port()
    environment = {**os.environ, "DOCKER_MODEL_STATE_DIR": str(tmp_path / "state")}
    process = subprocess.Popen(
        rpc_server_command("--port", str(port)),
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job has
    )
    try:
        assert wait_until(lambda: answers(Endpoint("127.0.0.1", port)), 60)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        _, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    with pytest.raises(RpcUnreachable):
        probe(Endpoint("127.0.0.1", port))


@pytest.mark.integration
def test_detach_starts_it_in_the_background_and_stop_ends_it(state_env: Path) -> None:
    port = free_port()
    started = run_cli(state_env, "--port", str(port), "--detach")
    assert started.returncode == 0, started.stderr
    record = runner_pid.read_pid_file(port, rpc_cli.RPC_SERVER)
    assert record is not None
    try:
        assert announced(started.stdout)["endpoint"] == [f"127.0.0.1:{port}"]
        assert f"RPC server running in the background on 127.0.0.1:{port}" in started.stdout
        assert runner_pid.is_the_runner(record, rpc_cli.RPC_SERVER)
        assert psutil.Process(record.pid).ppid() != os.getpid()
        assert answers(Endpoint("127.0.0.1", port))
        assert stat.S_IMODE((state_env / "rpc-cache").stat().st_mode) == 0o700  # the default cache, private
        again = run_cli(state_env, "--port", str(port), "--detach")
        assert again.returncode == 1
        assert f"an rpc-server already runs on port {port} (pid {record.pid})" in again.stderr
        stopped = run_cli(state_env, "--stop", "--port", str(port))
        assert stopped.returncode == 0, stopped.stderr
        assert f"RPC server on port {port} stopped" in stopped.stdout
        assert not psutil.pid_exists(record.pid) or psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE
        assert not runner_pid.pid_path(port, rpc_cli.RPC_SERVER).exists()
        with pytest.raises(RpcUnreachable):
            probe(Endpoint("127.0.0.1", port))
    finally:
        if runner_pid.is_the_runner(record, rpc_cli.RPC_SERVER):
            os.kill(record.pid, signal.SIGKILL)


@pytest.mark.integration
def test_a_stale_pid_file_naming_another_process_is_removed_and_nothing_signalled(state_env: Path) -> None:
    port = free_port()
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        runner_pid.write_pid_file(port, rpc_cli.RPC_SERVER, pid=stranger.pid)  # its pid and start time, all true
        stopped = run_cli(state_env, "--stop", "--port", str(port))
        assert stopped.returncode == 1
        assert f"Error: no detached rpc-server of this user runs on port {port}" in stopped.stderr
        assert stranger.poll() is None, "a process the pid file named, not an rpc-server, was signalled"
        assert not runner_pid.pid_path(port, rpc_cli.RPC_SERVER).exists()
    finally:
        stranger.kill()
        stranger.wait()


def interface_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    for items in psutil.net_if_addrs().values():
        for item in items:
            if item.family == socket.AF_INET and not item.address.startswith("127."):
                return str(item.address)
    return None


@pytest.mark.integration
def test_a_remote_start_needs_allow_remote_and_warns(tmp_path: Path) -> None:
    address = interface_address()
    if address is None:
        pytest.skip("this machine has no IPv4 address besides loopback")
    state, port = tmp_path / "state", free_port()
    refused = run_cli(state, "--host", address, "--port", str(port), "--detach")
    assert refused.returncode == 1
    assert f"--host {address} is not loopback" in refused.stderr
    started = run_cli(state, "--host", address, "--port", str(port), "--detach", "--allow-remote")
    try:
        assert started.returncode == 0, started.stderr
        assert "no authentication" in started.stderr
        assert "prompts' activations cross the network in clear text" in started.stderr
        assert "trusted network" in started.stderr
        assert probe(Endpoint(address, port)).version == bundled_protocol()
    finally:
        assert run_cli(state, "--stop", "--port", str(port)).returncode == 0


@pytest.mark.integration
def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        result = run_cli(tmp_path / "state", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr == f"Error: port {port} on 127.0.0.1 is in use: stop what holds it, or choose another --port\n"


@pytest.mark.integration
def test_an_unknown_device_is_refused_with_the_devices_listed(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "state", "--port", str(free_port()), "--device", "NOPE0")
    assert result.returncode == 1
    assert "Error: unknown device NOPE0: this machine has CPU (" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.integration
def test_an_offer_beyond_the_device_is_refused(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "state", "--port", str(free_port()), "--device", "CPU", "--mem", "1000T")
    assert result.returncode == 1
    assert "Error: --mem 1000.00TB is more than CPU has" in result.stderr


@pytest.mark.integration
def test_the_server_prunes_its_cache_at_start(state_env: Path, tmp_path: Path) -> None:
    cache, port = tmp_path / "cache", free_port()
    cache.mkdir(mode=0o750)
    write_cache_files(cache, [OLD, MIDDLE, NEW], size=1_000_000)
    options = ["--cache", "cache", "--cache-size", "2.5M", "--detach"]  # a folder where the user stands
    started = run_cli(state_env, "--port", str(port), *options, cwd=tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        assert announced(started.stdout)["cache"] == [f"{cache} (up to 2.50MB)"]
        assert sorted(path.name for path in cache.iterdir()) == [MIDDLE, NEW]
        assert stat.S_IMODE(cache.stat().st_mode) == 0o750  # a folder the user named keeps its mode
    finally:
        assert run_cli(state_env, "--stop", "--port", str(port)).returncode == 0
