"""The runner's pid file: written by the runner once it has bound its port, trusted only after a check.

A pid file can outlive its runner (a crash, a reboot) and name a process that has nothing to do with
it. Before any signal, the CLI checks that the process is the one that wrote the file: its start time
and its command line must match. Shared by the CLI (reads, stops) and the runner (writes). Other
processes kept by port (`docker model rpc-server --detach`) get pid files of their own `PidKind`.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from docker_model import settings

RUNNER_MODULE = "docker_model.runner"
START_TIME_TOLERANCE_SECONDS = 0.5


@dataclass(frozen=True)
class PidKind:
    """Processes with a pid file per port, `<name>-<port>.pid`, trusted while the process runs `module`."""

    name: str
    module: str


RUNNER = PidKind("runner", RUNNER_MODULE)


def pid_path(port: int, kind: PidKind = RUNNER) -> Path:
    return settings.state_dir() / f"{kind.name}-{port}.pid"


@dataclass(frozen=True)
class RunnerRecord:
    pid: int
    port: int
    started: float  # the process's start time, as psutil reports it


def process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def write_pid_file(port: int, kind: PidKind = RUNNER, pid: int | None = None) -> RunnerRecord:
    """Called by the runner itself, after binding `port` (or for the process `pid`, by the one that started it)."""
    from docker_model.files import write_json  # not needed by the CLI's everyday commands, which only read

    pid = os.getpid() if pid is None else pid
    record = RunnerRecord(pid, port, process_start_time(pid) or 0.0)
    write_json(pid_path(port, kind), record.__dict__, sync=False)
    return record


def remove_pid_file(record: RunnerRecord) -> None:
    """Called by the runner as it exits: removes the file only while it still names this process."""
    if read_pid_file(record.port) == record:
        pid_path(record.port).unlink(missing_ok=True)


def read_pid_file(port: int, kind: PidKind = RUNNER) -> RunnerRecord | None:
    try:
        data = json.loads(pid_path(port, kind).read_text())
        return RunnerRecord(int(data["pid"]), int(data["port"]), float(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_the_runner(record: RunnerRecord, kind: PidKind = RUNNER) -> bool:
    """Whether the process the record names is still the runner (or the process of `kind`) that it names."""
    import psutil

    try:
        process = psutil.Process(record.pid)
        started, command = process.create_time(), process.cmdline()
    except psutil.Error:
        return False
    return abs(started - record.started) <= START_TIME_TOLERANCE_SECONDS and kind.module in command


def live_runner(port: int, kind: PidKind = RUNNER) -> RunnerRecord | None:
    """The runner (or process of `kind`) serving `port` according to its pid file; a stale file is removed,
    nothing signalled."""
    record = read_pid_file(port, kind)
    if record is None:
        return None
    if is_the_runner(record, kind):
        return record
    with contextlib.suppress(OSError):
        pid_path(port, kind).unlink()
    return None
