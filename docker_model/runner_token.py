"""The runner's access token: generated at the runner's first start and kept, readable by its owner only,
in the state directory. The runner checks it (`runner/api/access.py`); the CLI sends it, from
`MODEL_RUNNER_TOKEN` or, for a runner on this machine, from the file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from docker_model import settings


def token_path() -> Path:
    return settings.state_dir() / "token"


def read_token() -> str | None:
    """The stored token, or None when there is none (or it cannot be read)."""
    try:
        return token_path().read_text().strip() or None
    except OSError:
        return None


def ensure_token() -> str:
    """The stored token, created first if there is none (by the runner, as it starts)."""
    path = token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = read_token()
        if existing is None:
            raise OSError(f"the token file {path} is empty or unreadable: remove it to get a new token") from None
        return existing
    with os.fdopen(fd, "w") as file:
        try:
            file.write(token + "\n")
            file.flush()
            os.fsync(file.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
    return token
