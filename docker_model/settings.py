"""Paths, ports and environment variables shared by the CLI, the runner and the store.

Pure and cheap: nothing here touches the disk or the network at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from docker_model.rpc_protocol import Endpoint

APP_NAME = "docker-model"
DEFAULT_RUNNER_PORT = 12434
DEFAULT_RUNNER_BIND = "127.0.0.1"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})  # names of this machine in a URL or an Origin
DEFAULT_CONTEXT_SIZE = 4096  # tokens per request, when neither `configure` nor the model's package set one


class SettingsError(ValueError):
    """An environment variable holds a value this program cannot use; the message names it and the fix."""


DEFAULT_MAX_LOADED_MODELS = 2
DEFAULT_PARALLEL_REQUESTS = 4
DEFAULT_HUNG_WORKER_SECONDS = 300


def _int_variable(name: str, default: int, low: int, high: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}: fix or unset it") from None
    if not low <= number <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {number}: fix or unset it")
    return number


def runner_port() -> int:
    """The TCP port the runner listens on (`MODEL_RUNNER_PORT`)."""
    return _int_variable("MODEL_RUNNER_PORT", DEFAULT_RUNNER_PORT, 1, 65535)


def max_loaded_models() -> int:
    """How many models the runner keeps loaded at once (`DOCKER_MODEL_MAX_LOADED_MODELS`)."""
    return _int_variable("DOCKER_MODEL_MAX_LOADED_MODELS", DEFAULT_MAX_LOADED_MODELS, 1, 64)


def parallel_requests() -> int:
    """How many requests one model decodes together (`DOCKER_MODEL_NUM_PARALLEL`)."""
    return _int_variable("DOCKER_MODEL_NUM_PARALLEL", DEFAULT_PARALLEL_REQUESTS, 1, 64)


def hung_worker_seconds() -> int:
    """How long a busy worker may go without progress before the runner kills it
    (`DOCKER_MODEL_HUNG_WORKER_SECONDS`): generous, as one step of a large model's prompt on a CPU is slow."""
    return _int_variable("DOCKER_MODEL_HUNG_WORKER_SECONDS", DEFAULT_HUNG_WORKER_SECONDS, 1, 86400)


def memory_budget() -> int | None:
    """Bytes of RAM the runner's models may use in all (`DOCKER_MODEL_MEMORY_BUDGET`, e.g. `8GiB`); None: what
    the machine has available, less a safety margin."""
    value = os.environ.get("DOCKER_MODEL_MEMORY_BUDGET", "")
    if not value:
        return None
    from docker_model.units import parse_bytes

    try:
        return parse_bytes(value)
    except ValueError as error:
        raise SettingsError(f"DOCKER_MODEL_MEMORY_BUDGET: {error}; fix or unset it") from None


def rpc_servers() -> tuple[Endpoint, ...]:
    """The runner-wide pool of RPC servers every model's layers go to unless it is configured otherwise
    (`DOCKER_MODEL_RPC`: `HOST:PORT[@SIZE][,...]`); empty: none."""
    value = os.environ.get("DOCKER_MODEL_RPC", "").strip()
    if not value:
        return ()
    from docker_model.rpc_protocol import parse_endpoints

    try:
        return parse_endpoints(value)
    except ValueError as error:
        raise SettingsError(f"DOCKER_MODEL_RPC: {error}; fix or unset it") from None


def runner_host() -> str:
    """The runner's base URL as the CLI reaches it (`MODEL_RUNNER_HOST`), without a trailing slash."""
    value = os.environ.get("MODEL_RUNNER_HOST", "")
    if not value:
        scheme = "https" if tls_files() else "http"
        return f"{scheme}://{DEFAULT_RUNNER_BIND}:{runner_port()}"
    try:
        return http_url(value)
    except ValueError:
        raise SettingsError(
            f"MODEL_RUNNER_HOST is not a valid URL: {value!r}; use one like http://127.0.0.1:12434 "
            "(an IPv6 address in brackets: http://[::1]:12434), or unset it"
        ) from None


def http_url(value: str) -> str:
    """`value` as an http(s) URL without a trailing slash (`http://` when it names no scheme); ValueError when
    it is not one."""
    from urllib.parse import urlsplit

    url = value if "://" in value else f"http://{value}"
    parts = urlsplit(url)
    parts.port  # noqa: B018 - raises ValueError for a port out of range
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return url.rstrip("/")


def listen_address() -> str | None:
    """An address the runner listens on besides loopback (`MODEL_RUNNER_BIND`, e.g. the Docker bridge's
    172.17.0.1, or 0.0.0.0 for every address); None: loopback only."""
    value = os.environ.get("MODEL_RUNNER_BIND", "").strip()
    if not value:
        return None
    try:
        return ip_address(value)
    except ValueError:
        raise SettingsError(
            f"MODEL_RUNNER_BIND must be an IP address of this machine (like 172.17.0.1), not {value!r}"
        ) from None


def ip_address(value: str) -> str:
    """`value` as an IP address in its usual spelling (`[::]` -> `::`); ValueError when it is not one."""
    import ipaddress

    return str(ipaddress.ip_address(value.strip().strip("[]")))


TokenScope = Literal["none", "management", "all"]
TOKEN_SCOPES: tuple[TokenScope, ...] = ("none", "management", "all")


def token_scope() -> TokenScope | None:
    """Which routes need the runner's token (`DOCKER_MODEL_REQUIRE_TOKEN`: none, management or all); None:
    each address's default (loopback none, the Docker bridge management, any other address all)."""
    value = os.environ.get("DOCKER_MODEL_REQUIRE_TOKEN", "").strip().lower()
    if not value:
        return None
    for scope in TOKEN_SCOPES:
        if value == scope:
            return scope
    raise SettingsError(f"DOCKER_MODEL_REQUIRE_TOKEN must be none, management or all, not {value!r}")


def bridge_interface() -> str | None:
    """The network bridge containers reach the host through (`DOCKER_MODEL_BRIDGE`, default docker0);
    None when set to `none`: the runner never counts an address as a bridge nor opens one for Compose."""
    value = os.environ.get("DOCKER_MODEL_BRIDGE", "").strip() or "docker0"
    return None if value.lower() == "none" else value


def tls_files() -> tuple[Path, Path] | None:
    """The runner's TLS certificate and key (`DOCKER_MODEL_TLS_CERT`, `DOCKER_MODEL_TLS_KEY`); None: plain HTTP."""
    cert, key = os.environ.get("DOCKER_MODEL_TLS_CERT", ""), os.environ.get("DOCKER_MODEL_TLS_KEY", "")
    if not cert and not key:
        return None
    if not cert or not key:
        raise SettingsError("set both DOCKER_MODEL_TLS_CERT and DOCKER_MODEL_TLS_KEY for TLS, or neither")
    return Path(cert).expanduser(), Path(key).expanduser()


def runner_token() -> str | None:
    """The token the CLI sends (`MODEL_RUNNER_TOKEN`); None: the local runner's own token file, if any."""
    return os.environ.get("MODEL_RUNNER_TOKEN", "").strip() or None


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


DOCKER_HUB_URL = "https://hub.docker.com"
HUGGING_FACE_URL = "https://huggingface.co"


def _url_variable(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return http_url(value)
    except ValueError:
        raise SettingsError(f"{name} is not a valid URL: {value!r}; use one like {default}, or unset it") from None


def docker_hub_url() -> str:
    """Docker Hub's web API, which `docker model search` asks for the `ai/` models (`DOCKER_MODEL_HUB_URL`)."""
    return _url_variable("DOCKER_MODEL_HUB_URL", DOCKER_HUB_URL)


def huggingface_url() -> str:
    """The Hugging Face server (`HF_ENDPOINT`, as huggingface_hub names it: a mirror)."""
    return _url_variable("HF_ENDPOINT", HUGGING_FACE_URL)


GpuMode = Literal["auto", "none", "cuda", "metal"]
GPU_MODES: tuple[GpuMode, ...] = ("auto", "none", "cuda", "metal")


def gpu_mode() -> GpuMode:
    """Which accelerator the runner may use (`DOCKER_MODEL_GPU`): `auto` (what the machine and the llama.cpp
    build offer), `none` (the CPU only), `cuda` or `metal` (that GPU; the runner's status says why when it
    cannot have it)."""
    value = os.environ.get("DOCKER_MODEL_GPU", "").strip().lower() or "auto"
    for mode in GPU_MODES:
        if value == mode:
            return mode
    raise SettingsError(f"DOCKER_MODEL_GPU must be auto, none, cuda or metal, not {value!r}: fix or unset it")


def contexts_path() -> Path:
    """The named runner endpoints of `docker model context` (Docker Model Runner's file, with tokens: 0600)."""
    return docker_config_dir() / "model" / "contexts.json"
