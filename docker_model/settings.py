"""Paths, ports and environment variables shared by the CLI, the runner and the store.

Pure and cheap: nothing here touches the disk or the network at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "docker-model"
DEFAULT_RUNNER_PORT = 12434
DEFAULT_RUNNER_BIND = "127.0.0.1"


def runner_port() -> int:
    """The TCP port the runner listens on (`MODEL_RUNNER_PORT`)."""
    value = os.environ.get("MODEL_RUNNER_PORT", "")
    if not value:
        return DEFAULT_RUNNER_PORT
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"MODEL_RUNNER_PORT must be a port number, not {value!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"MODEL_RUNNER_PORT must be between 1 and 65535, not {port}")
    return port


def runner_host() -> str:
    """The runner's base URL as the CLI reaches it (`MODEL_RUNNER_HOST`), without a trailing slash."""
    value = os.environ.get("MODEL_RUNNER_HOST", "")
    if not value:
        return f"http://{DEFAULT_RUNNER_BIND}:{runner_port()}"
    if "://" not in value:
        value = f"http://{value}"
    return value.rstrip("/")


def models_path() -> Path:
    """Root of the model store (`MODELS_PATH`), deliberately apart from Docker Desktop's `~/.docker/models`."""
    value = os.environ.get("MODELS_PATH")
    if value:
        return Path(value).expanduser()
    import platformdirs

    return platformdirs.user_data_path(APP_NAME) / "models"


def state_dir() -> Path:
    """Where the runner keeps its pid file and logs (`DOCKER_MODEL_STATE_DIR` overrides)."""
    value = os.environ.get("DOCKER_MODEL_STATE_DIR")
    if value:
        return Path(value).expanduser()
    import platformdirs

    return platformdirs.user_state_path(APP_NAME)


def docker_config_dir() -> Path:
    """Docker's configuration directory (`DOCKER_CONFIG`): plugins and `docker login` credentials."""
    value = os.environ.get("DOCKER_CONFIG")
    return Path(value).expanduser() if value else Path.home() / ".docker"
