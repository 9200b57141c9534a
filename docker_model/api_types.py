"""The JSON the CLI and the runner exchange on the runner's own routes, described once for both sides.

Plain `TypedDict`s (hallway: no I/O, cheap to import): the runner builds its answers as these and
validates request bodies against them with pydantic; the CLI reads answers as these. Keys with a hyphen
(`context-size`) are Docker Model Runner's, hence the functional form.
"""

from __future__ import annotations

from typing import Any, Literal

# typing_extensions' TypedDict, not typing's: pydantic validates only this one before Python 3.12
from typing_extensions import NotRequired, TypedDict

Capability = Literal["chat", "embeddings", "tools", "vision", "reasoning"]  # what a model can do, in this order


class ModelInfo(TypedDict):
    """A model in the store (`GET /models`, `GET /models/{name}`, `list --json`), or in a registry
    (`?remote=true`: no tags). `capabilities` is this runner's addition to Docker Model Runner's shape."""

    id: str
    tags: list[str]
    created: int
    config: dict[str, Any]
    capabilities: list[Capability]


class DMRMetadata(TypedDict, total=False):
    """Docker Model Runner's `dmr` block on OpenAI's model objects; what a model's config lacks is left out.
    `capabilities` is this runner's addition."""

    context_window: int
    architecture: str
    parameters: str
    quantization: str
    size: str
    capabilities: list[Capability]


class OpenAIModel(TypedDict):
    """A model as OpenAI's `GET /v1/models` lists it, with Docker Model Runner's `dmr` block."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    dmr: DMRMetadata


class OpenAIModelList(TypedDict):
    object: Literal["list"]
    data: list[OpenAIModel]


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
    mode: Literal["pull", "push"]  # Docker Model Runner's: which transfer the line is about


class RunningModel(TypedDict):
    """A loaded model, or one being loaded (`GET /engines/ps`). The first seven keys are Docker Model Runner's,
    with its types; the others are this runner's, None while the model is still loading."""

    model_name: str
    backend_name: str
    mode: str
    last_used: str  # RFC 3339, UTC; Go's zero time ("0001-01-01T00:00:00Z") while it loads
    in_use: bool
    loading: bool
    keep_alive: str  # as a Go duration ("5m0s"), "-1" for never
    model_id: str
    until: int | None  # Unix seconds it unloads at if left idle; None: never, or still loading
    context_size: int | None  # tokens per sequence
    sequences: int | None  # requests decoded together
    context_reason: str | None  # why this context: configured, packaged, the default, reduced to fit ...
    memory_estimated: int | None  # bytes, estimated before it loaded
    memory_measured: int | None  # bytes resident in its worker process now
    pid: int | None
    rpc: list[RpcShare]  # what each RPC server of its pool holds; empty without a pool


class RpcShare(TypedDict):
    """One RPC server's part of a loaded model (`ps`): estimated from the split, measured by its worker
    (the buffers llama.cpp allocated on that server's devices; None until the worker reports them)."""

    endpoint: str  # host:port
    fraction: float  # of the layers
    offer: int  # bytes it offered when the model loaded
    estimated: int  # bytes: its fraction of what the model's layers, cache and compute take
    measured: int | None  # model + context + compute bytes
    model_bytes: int | None
    context_bytes: int | None
    compute_bytes: int | None


class PoolInfo(TypedDict):
    """The RPC servers a model's layers go to, and which setting chose them."""

    endpoints: list[str]  # HOST:PORT[@SIZE], as given
    source: str  # "set with configure", "runtime flag" or "runner-wide (DOCKER_MODEL_RPC)"
    tensor_split: list[float] | None  # as given with --tensor-split; None: by each server's offer


class RpcEndpointStatus(TypedDict):
    """An RPC server the runner-wide pool or a model's settings name (`GET /engines/rpc`, `status`). One leased
    to a loaded model is reported from its lease and its worker, never probed: a server serves one client."""

    endpoint: str  # host:port
    cap: int | None  # the @SIZE it was given
    used_by: list[str]  # "runner-wide", or the models whose settings name it
    reachable: bool
    protocol: str | None  # the RPC protocol version it answered, "3.0.0"
    offer: int | None  # bytes it may hold: its devices' free memory, at most its cap
    leased_to: str | None  # the loaded model holding it
    measured: int | None  # bytes the holder's worker allocated there
    error: str | None  # why it is not usable


class DiskUsage(TypedDict):
    """`GET /engines/df`: bytes."""

    models_disk_usage: int
    default_backend_disk_usage: int


# What `configure` set for a model, as Docker Model Runner writes it: only the fields set; keep_alive as Go
# writes a duration (`5m0s`, `-1`: never).
BackendConfig = TypedDict(
    "BackendConfig", {"context-size": int, "runtime-flags": list[str], "keep_alive": str, "rpc": str}, total=False
)


class ModelSettingsInfo(TypedDict):
    """A model's settings (`GET /engines/_configure`): Docker Model Runner's entry (`Backend` ... `Config`,
    what `configure` set, only the fields it set), then what the model loads (or loaded) with and why."""

    Backend: str
    Model: str  # its first tag, or its ID
    ModelID: str
    Mode: Literal["completion", "embedding"]
    Config: BackendConfig
    context_size: int | None  # tokens per sequence in effect; None when it would not fit
    sequences: int | None
    reason: str  # why that context, or why it does not fit
    loaded: bool
    keep_alive: float  # seconds in effect (negative: never unloaded)
    rpc: PoolInfo | None  # the RPC servers its layers go to, and why; None: this machine's own memory


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


ConfiguredModels = list[ModelSettingsInfo]


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


class RequestRecord(TypedDict):
    """A recent inference request and its answer (`GET /engines/requests`). The first eleven keys are Docker
    Model Runner's (`response` or `error`, by status, once answered; `timestamp` in Unix seconds; a stream of
    OpenAI chunks assembled into one answer); the others this runner's. Bodies longer than the runner keeps
    end with a `...[cut: N bytes in all]` mark; keys and credentials that look secret read `[redacted]`."""

    id: str
    model: str  # as the request named it
    method: str
    url: str
    request: str
    response: NotRequired[str]
    error: NotRequired[str]
    timestamp: int
    status_code: int  # 0 while it is being answered
    user_agent: NotRequired[str]
    origin: NotRequired[str]  # the API dialect, when not OpenAI's: "anthropic", "ollama"
    duration_ms: float | None  # None while it is being answered
    request_truncated: bool
    response_truncated: bool


class ModelRequests(TypedDict):
    """A model's recent requests, oldest first (`GET /engines/requests`; one per event of its stream)."""

    count: int
    model: str  # the model's ID
    config: BackendConfig  # what `configure` set
    records: list[RequestRecord]


class HistoryMemory(TypedDict):
    """Memory at one sample, in bytes: `used` by the models' workers, `available` on the machine, the models'
    `budget` if set, and the `limit` the memory alert measures use against (the budget, else available + used)."""

    used: int
    available: int
    budget: int | None
    limit: int


class HistoryModel(TypedDict):
    """One model over one sample's interval; `requests` and `errors` (5xx) count within the interval."""

    tokens_per_second: float
    requests: int
    errors: int
    queue: int  # requests waiting for a sequence, at the sample
    ttft_seconds: float | None  # mean time to first token of the requests that got one in the interval
    memory_bytes: int  # its worker's resident memory


class HistorySample(TypedDict):
    time: float  # epoch seconds
    memory: HistoryMemory
    models: dict[str, HistoryModel]  # by the name the model was loaded or asked by


class HistoryAlert(TypedDict):
    kind: Literal["memory", "queue", "crash"]
    model: str | None
    message: str
    since: float  # epoch seconds


class History(TypedDict):
    """`GET /engines/history`: the last `window_seconds` of samples, oldest first, and the alerts they raise."""

    interval_seconds: int
    window_seconds: int
    samples: list[HistorySample]
    alerts: list[HistoryAlert]


class ConsoleSession(TypedDict):
    """`GET /console/session`: a fresh secret (`nonce.mac`), sent back as `X-Docker-Model-Secret` by the console."""

    secret: str


class CheckReport(TypedDict):
    """`POST /models/_check[?repair=true]`: the store's integrity check."""

    models: int  # models listed
    blobs: int  # their blobs, each one's digest computed
    verified_bytes: int  # bytes of the blobs that matched their digest
    problems: list[str]  # what it found; after a repair, each says what was done
    repaired: bool


class PrunedModel(TypedDict):
    id: str
    tags: list[str]
    last_used: int  # Unix seconds
    size: int  # bytes of its layers


class PruneResult(TypedDict):
    """`POST /models/_prune`: the models unused for that long (deleted when the request listed them)."""

    models: list[PrunedModel]
    reclaimed: int  # bytes freed (or that deleting them would free), blobs other models use left out
    deleted: bool


# Request bodies. All keys optional as far as the type goes: the runner checks what each route needs.
# `bearer-token`: a registry token to pull with (Docker Model Runner's field), never logged.
CreateRequest = TypedDict("CreateRequest", {"from": str, "bearer-token": str}, total=False)


class UnloadRequest(TypedDict, total=False):
    all: bool
    backend: str  # Docker Model Runner's: only models on this backend (this runner has one, llama.cpp)
    models: list[str]


ConfigureRequest = TypedDict(
    "ConfigureRequest",
    {
        "model": str,
        "context-size": int | None,
        "context_size": int | None,
        "runtime-flags": list[str] | None,
        "runtime_flags": list[str] | None,
        "raw-runtime-flags": str | None,  # the flags as one shell-quoted string (Compose's provider sends it)
        "keep_alive": str | float | None,
        "rpc": str | None,  # RPC servers HOST:PORT[@SIZE][,...]; "none": no pool; "default": the runner-wide one
    },
    total=False,
)


class PruneRequest(TypedDict, total=False):
    unused_for: str  # a duration: 30m, 24h, 7d
    models: list[str]  # IDs to delete, of those unused for that long; without it, nothing is deleted


# How the runner validates request bodies (pydantic reads this attribute): strict types, and a field
# the route does not know is refused, never ignored.
for _request in (CreateRequest, UnloadRequest, ConfigureRequest, PruneRequest):
    setattr(_request, "__pydantic_config__", {"extra": "forbid", "strict": True})  # noqa: B010
