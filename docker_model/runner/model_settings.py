"""Per-model settings from `docker model configure`, kept on disk so they hold across runner restarts.

The context size a model loads with is decided here, in this order: what `configure` set, the model's
packaged `context_size`, else 4096 capped at the model's trained maximum.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from docker_model.api_types import BackendConfig
from docker_model.distribution.config_fields import trained_context_length
from docker_model.files import write_json
from docker_model.settings import DEFAULT_CONTEXT_SIZE
from docker_model.units import go_duration

DEFAULT_KEEP_ALIVE_SECONDS = 300.0


@dataclass
class ModelSettings:
    context_size: int | None = None
    keep_alive: float | None = None  # seconds; 0 unloads at once, -1 never
    runtime_flags: list[str] = field(default_factory=list)
    rpc: str | None = None  # `configure --rpc`: RPC servers (HOST:PORT[@SIZE],...), or "none"; None: not set


def effective_keep_alive(settings: ModelSettings) -> float:
    return DEFAULT_KEEP_ALIVE_SECONDS if settings.keep_alive is None else settings.keep_alive


def backend_config(settings: ModelSettings) -> BackendConfig:
    """What `configure` set, as Docker Model Runner shows it (`_configure`, `requests`): the fields set."""
    config: BackendConfig = {}
    if settings.context_size is not None:
        config["context-size"] = settings.context_size
    if settings.runtime_flags:
        config["runtime-flags"] = settings.runtime_flags
    if settings.keep_alive is not None:
        config["keep_alive"] = go_duration(settings.keep_alive)
    if settings.rpc is not None:
        config["rpc"] = settings.rpc
    return config


def effective_context_size(settings: ModelSettings, config: dict) -> int:
    return wanted_context_size(settings, config)[0]


def wanted_context_size(settings: ModelSettings, config: dict) -> tuple[int, str]:
    """The context per sequence a model asks for before memory has a say, and where it comes from."""
    if settings.context_size:
        return settings.context_size, "set with configure"
    packaged = config.get("context_size")
    if packaged:
        return int(packaged), "packaged with the model"
    trained = trained_context_length(config)
    if trained and trained < DEFAULT_CONTEXT_SIZE:
        return trained, f"the default ({DEFAULT_CONTEXT_SIZE}) capped at what the model was trained for"
    return DEFAULT_CONTEXT_SIZE, "the default"


class SettingsBook:
    """Settings by model ID, saved atomically as JSON in the runner's state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            raw = {}
        self.by_model = {model_id: ModelSettings(**values) for model_id, values in raw.items()}

    def get(self, model_id: str) -> ModelSettings:
        with self.lock:
            return self.by_model.get(model_id, ModelSettings())

    def set(self, model_id: str, settings: ModelSettings) -> None:
        with self.lock:
            self.by_model[model_id] = settings
            write_json(self.path, {key: asdict(value) for key, value in self.by_model.items()})
