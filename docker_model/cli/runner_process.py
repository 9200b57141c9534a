"""Starting and stopping the runner host process in the background, as the CLI does when it is needed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from docker_model import settings

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def runner_port_of(base_url: str) -> int | None:
    """The port of a runner this machine can start (a loopback URL), else None."""
    parts = urlsplit(base_url)
    if parts.hostname not in LOCAL_HOSTS:
        return None
    return parts.port or (443 if parts.scheme == "https" else 80)


def pid_path(port: int) -> Path:
    return settings.state_dir() / f"runner-{port}.pid"


def log_path(port: int) -> Path:
    return settings.state_dir() / f"runner-{port}.log"


def start(port: int) -> subprocess.Popen[bytes]:
    """Start the runner detached from this terminal, logging to its log file."""
    settings.state_dir().mkdir(parents=True, exist_ok=True)
    with open(log_path(port), "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "docker_model.runner", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    pid_path(port).write_text(str(process.pid))
    return process


def last_log_lines(port: int, count: int = 5) -> str:
    try:
        lines = log_path(port).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-count:])


def running_pid(port: int) -> int | None:
    try:
        pid = int(pid_path(port).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def stop(port: int) -> bool:
    """Stop the runner started for this port; False when none was running."""
    pid = running_pid(port)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    pid_path(port).unlink(missing_ok=True)
    return True
