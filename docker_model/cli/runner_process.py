"""Starting and stopping the runner host process in the background, as the CLI does when it is needed.

The runner is started in Python's isolated mode from the root directory, so that no folder but the
installed package can supply its code (a `docker_model/` folder where the user stands is never
imported) and no user directory is kept busy. One CLI at a time starts it (a lock file), and only a
process that the pid file names *and* that is still that runner is ever signalled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from docker_model import runner_pid, settings
from docker_model.processes import own_process_group

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
NEUTRAL_DIRECTORY = "/"


def runner_port_of(base_url: str) -> int | None:
    """The port of a runner this machine can start (a loopback URL), else None."""
    parts = urlsplit(base_url)
    if parts.hostname not in settings.LOCAL_HOSTS:
        return None
    return parts.port or (443 if parts.scheme == "https" else 80)


def log_path(port: int) -> Path:
    return settings.state_dir() / f"runner-{port}.log"


class StateDirError(Exception):
    """The runner's state directory cannot be written; the message names it and the way out."""

    def __init__(self, error: OSError) -> None:
        where = error.filename or settings.state_dir()
        super().__init__(
            f"cannot write the runner's state in {where}: {error.strerror}; "
            "free some space there, or set DOCKER_MODEL_STATE_DIR to a writable folder"
        )

    @classmethod
    def unwritable_log(cls, port: int) -> StateDirError:
        """The runner exited without a word in its log: its state directory is full or not writable."""
        return cls(OSError(errno.ENOSPC, "the runner exited and its log is empty (is it full?)", str(log_path(port))))


@contextlib.contextmanager
def start_lock(port: int) -> Iterator[None]:
    """Held while one CLI starts the runner of `port`; others wait, then find it running."""
    try:
        settings.state_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = open(settings.state_dir() / f"runner-{port}.lock", "a")  # noqa: SIM115 - closed below
    except OSError as error:
        raise StateDirError(error) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def command(port: int, load: str | None = None, host: str | None = None) -> list[str]:
    """The runner's command line: this Python, isolated; run from NEUTRAL_DIRECTORY (so is a service's)."""
    return (
        [sys.executable, "-I", "-u", "-m", "docker_model.runner", "--port", str(port)]
        + ([f"--load={load}"] if load else [])
        + ([f"--host={host}"] if host else [])
    )


def start(port: int, load: str | None = None, host: str | None = None) -> subprocess.Popen[bytes]:
    """Start the runner detached from this terminal, logging to its log file; it writes its own pid file.
    With `load`, the runner starts loading that model at once (a command about to use it); with `host`, it
    listens on that address too (else on MODEL_RUNNER_BIND's, if set)."""
    try:
        log = os.fdopen(os.open(log_path(port), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
    except OSError as error:
        raise StateDirError(error) from None
    with log:
        return subprocess.Popen(
            command(port, load, host),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            **own_process_group(),  # the caller's session: see docker_model/processes.py
            cwd=NEUTRAL_DIRECTORY,
        )


def stop(port: int, kind: runner_pid.PidKind = runner_pid.RUNNER) -> bool:
    """Stop the runner (or the process of `kind`) serving this port; False when no such process of ours holds it."""
    record = runner_pid.live_runner(port, kind)
    if record is None:
        return False
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and runner_pid.is_the_runner(record, kind):
        time.sleep(0.05)
    if runner_pid.is_the_runner(record, kind):
        with contextlib.suppress(OSError):
            os.kill(record.pid, signal.SIGKILL)
    runner_pid.pid_path(port, kind).unlink(missing_ok=True)
    return True
