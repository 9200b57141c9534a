"""The JSON the CLI and the runner exchange on the runner's own routes, described once for both sides.

Plain `TypedDict`s (hallway: no I/O, cheap to import): the runner builds its answers as these and
validates request bodies against them with pydantic; the CLI reads answers as these. Keys with a hyphen
(`context-size`) are Docker Model Runner's, hence the functional form.
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import TypedDict  # not typing's: pydantic validates only this one before Python 3.12


class ModelInfo(TypedDict):
    """A model in the store (`GET /models`, `GET /models/{name}`, `list --json`)."""

    id: str
    tags: list[str]
    created: int
    config: dict[str, Any]


class LayerProgress(TypedDict):
    id: str
    size: int
    current: int


class ProgressLine(TypedDict, total=False):
    """One JSON line of a pull or push (`POST /models/create`, `POST /models/{name}/push`)."""

    type: Literal["progress", "success", "warning", "error"]
    message: str
    total: int
    layer: LayerProgress


class RunningModel(TypedDict):
    """A loaded model (`GET /engines/ps`)."""

    model_name: str
    model_id: str
    backend_name: str
    mode: str
    last_used: int
    until: int | None
    in_use: bool
    context_size: int  # tokens per sequence
    sequences: int  # requests decoded together
    context_reason: str  # why this context: configured, packaged, the default, reduced to fit ...
    memory_estimated: int  # bytes, estimated before it loaded
    memory_measured: int | None  # bytes resident in its worker process now
    pid: int


class DiskUsage(TypedDict):
    """`GET /engines/df`: bytes."""

    models_disk_usage: int
    default_backend_disk_usage: int


class ConfiguredValues(TypedDict):
    """What `configure` set for a model (None: not set)."""

    context_size: int | None
    keep_alive: float | None
    runtime_flags: list[str]


class ModelSettingsInfo(TypedDict):
    """A model's settings in effect (`GET /engines/_configure`): what it loads (or loaded) with and why."""

    model: str  # its ID
    name: str  # its first tag, or its ID
    context_size: int | None  # tokens per sequence in effect; None when it would not fit
    sequences: int | None
    reason: str  # why that context, or why it does not fit
    loaded: bool
    keep_alive: float
    runtime_flags: list[str]
    configured: ConfiguredValues


class MemoryParts(TypedDict):
    """An estimate of a model's memory, in bytes."""

    weights: int
    kv_cache: int
    compute: int
    overhead: int
    total: int


class FitReport(TypedDict):
    """Whether and how a model fits in the memory the runner may use (`GET /engines/_fit`)."""

    model: str
    name: str
    architecture: str
    parameters: str
    quantization: str
    size: str
    trained_context: int | None
    packaged_context: int | None
    configured_context: int | None
    fits: bool
    context_size: int  # tokens per sequence it loads with; when it does not fit, the smallest tried
    sequences: int
    reason: str  # why that context, or what does not fit and the fixes
    memory: MemoryParts | None  # the estimate of what it loads with; None when it does not fit
    room: int | None  # bytes of RAM the runner may give it now; None: unknown


class ConfiguredModels(TypedDict):
    models: list[ModelSettingsInfo]


class VersionInfo(TypedDict):
    """`GET /version`."""

    version: str
    engine: str
    models_path: str
    listeners: list[ListenerInfo]
    container_url: str | None  # where containers reach the runner (through the Docker bridge), if they can


class ListenerInfo(TypedDict):
    """An address the runner listens on, and which routes need its token there."""

    url: str
    kind: Literal["loopback", "bridge", "wildcard", "other"]
    token: Literal["none", "management", "all"]


class UnloadResult(TypedDict):
    """`POST /engines/unload`."""

    unloaded_runners: int
    models: list[str]


class TagResult(TypedDict):
    """`POST /models/{name}/tag`."""

    message: str
    target: str


# Request bodies. All keys optional as far as the type goes: the runner checks what each route needs.
CreateRequest = TypedDict("CreateRequest", {"from": str}, total=False)


class UnloadRequest(TypedDict, total=False):
    all: bool
    models: list[str]


ConfigureRequest = TypedDict(
    "ConfigureRequest",
    {
        "model": str,
        "context-size": int | None,
        "context_size": int | None,
        "runtime-flags": list[str] | None,
        "runtime_flags": list[str] | None,
        "keep_alive": str | float | None,
    },
    total=False,
)

# How the runner validates request bodies (pydantic reads this attribute): strict types, and a field
# the route does not know is refused, never ignored.
for _request in (CreateRequest, UnloadRequest, ConfigureRequest):
    setattr(_request, "__pydantic_config__", {"extra": "forbid", "strict": True})  # noqa: B010
