"""`hf.co/<org>/<repo>[:<quant>]`: a GGUF repository on Hugging Face, made into a model artifact here.

The tag picks the quantization file (Docker Model Runner's rule: the requested one, else `Q4_K_M`, else
the first GGUF by name, shards together). Files download into the store like registry blobs (their LFS
sha256 is known in advance, so they resume and verify the same way). `HF_TOKEN` is sent when set;
`HF_ENDPOINT` points elsewhere than huggingface.co (as in huggingface_hub).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from docker_model import settings
from docker_model.distribution import artifact
from docker_model.distribution.artifact import parse_rfc3339
from docker_model.distribution.cancel import Cancellation, CancelToken
from docker_model.distribution.errors import (
    AuthenticationError,
    ModelNotFoundError,
    RegistryError,
    UnsupportedFormatError,
)
from docker_model.distribution.model import Model
from docker_model.distribution.packaging import layer_from_file, model_config
from docker_model.distribution.progress import ProgressCallback, ProgressTracker
from docker_model.distribution.registry.download import download_blob
from docker_model.distribution.registry.httpio import (
    NETWORK_ERRORS,
    RETRY_STATUS,
    TIMEOUT,
    TransientError,
    may_carry_credentials,
    read_json,
)
from docker_model.distribution.registry.transport import retrying
from docker_model.distribution.store import Store
from docker_model.reference import DEFAULT_TAG, Reference

DEFAULT_QUANTIZATION = "Q4_K_M"
MAX_API_BYTES = 16 << 20  # a JSON answer of the API: a big repository's file listing runs to a few MiB
_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
T = TypeVar("T")
_TOKEN_FIX = "set HF_TOKEN to a Hugging Face access token that can read the repository"
_PLAIN_HTTP_FIX = "HF_ENDPOINT is plain HTTP, which carries HF_TOKEN only to localhost; use an https:// endpoint"


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int
    sha256: str | None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _has_quantization(name: str, quant: str) -> bool:
    """`quant` appears in the file name between separators (`-`, `.`, `_`), case-insensitively."""
    stem = name.lower().removesuffix(".gguf")
    return re.search(rf"[-._]{re.escape(quant.lower())}(?:[-._]|$)", stem) is not None


def select_gguf(files: list[RepoFile], quant: str | None) -> tuple[list[RepoFile], RepoFile | None]:
    """The weight file(s) for `quant` and the multimodal projector, if the repository has one."""
    ggufs = [f for f in files if f.name.lower().endswith(".gguf")]
    projectors = sorted((f for f in ggufs if "mmproj" in f.name.lower()), key=lambda f: f.name)
    weights = [f for f in ggufs if "mmproj" not in f.name.lower()]
    mmproj = projectors[0] if projectors else None
    if len(weights) <= 1:
        return weights, mmproj
    for wanted in (quant, DEFAULT_QUANTIZATION):
        if wanted and wanted.lower() not in (DEFAULT_TAG, "main"):
            matching = sorted((f for f in weights if _has_quantization(f.name, wanted)), key=lambda f: f.name)
            if matching:
                return matching, mmproj
    first = min(weights, key=lambda f: f.name)
    shard = _SHARD.search(first.name)
    if shard is None:
        return [first], mmproj
    prefix = first.path[: shard.start()]
    return sorted(
        (f for f in weights if f.path.startswith(prefix) and _SHARD.search(f.name)), key=lambda f: f.path
    ), mmproj


class HuggingFace:
    def __init__(self, session: requests.Session, endpoint: str | None = None, token: str | None = None) -> None:
        self.session = session
        self.endpoint = (endpoint or settings.huggingface_url()).rstrip("/")
        self.token = token if token is not None else os.environ.get("HF_TOKEN")

    def get(self, url: str, what: str, headers: dict[str, str] | None = None) -> requests.Response:
        """GET with the token (over HTTPS, or plain HTTP to localhost, only); 5xx and network errors raise
        TransientError, other failures a clear error. The answer is streamed: close it.
        """
        sent = dict(headers or {})
        if self.token and may_carry_credentials(url):
            sent["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.session.get(url, headers=sent, stream=True, timeout=TIMEOUT)
        except NETWORK_ERRORS as exc:
            raise TransientError(exc) from exc
        if response.status_code in (200, 206):
            return response
        response.close()
        if response.status_code in RETRY_STATUS:
            raise TransientError(f"HTTP {response.status_code}", response.status_code)
        if response.status_code in (401, 403):
            if self.token and not may_carry_credentials(url):
                raise AuthenticationError("huggingface.co", rejected=False, fix=_PLAIN_HTTP_FIX)
            raise AuthenticationError("huggingface.co", rejected=bool(self.token), fix=_TOKEN_FIX)
        if response.status_code == 404:
            raise ModelNotFoundError(what, "on Hugging Face")
        raise RegistryError("huggingface.co", response.status_code, response.reason or "unexpected answer")

    def api(self, path: str, repo: str) -> Any:
        """The JSON answer of the API at `path`, read up to MAX_API_BYTES."""
        with self.get(f"{self.endpoint}/api/{path}", f"hf.co/{repo}") as response:
            return read_json(response, MAX_API_BYTES, f"the answer of {self.endpoint}/api/{path}")

    def files(self, repo: str) -> list[RepoFile]:
        entries = self.api(f"models/{repo}/tree/main?recursive=true", repo)
        return [
            RepoFile(
                e["path"], int((e.get("lfs") or {}).get("size", e.get("size", 0))), (e.get("lfs") or {}).get("oid")
            )
            for e in entries
            if e.get("type") == "file"
        ]

    def last_modified(self, repo: str) -> datetime:
        """When the repository last changed: the artifact's `created`, so a re-pull gives the same ID."""
        text = self.api(f"models/{repo}", repo).get("lastModified")
        return parse_rfc3339(text) if text else datetime(1970, 1, 1, tzinfo=timezone.utc)

    def file_url(self, repo: str, path: str) -> str:
        return f"{self.endpoint}/{repo}/resolve/main/{quote(path)}"


def pull_huggingface(
    hub: HuggingFace,
    store: Store,
    ref: Reference,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    attempts: int = 4,
    backoff: float = 0.5,
) -> Model:
    """Download the chosen GGUF file(s) into the store and record an artifact built from them."""
    repo = ref.repository

    def retry(action: Callable[[], T], token: CancelToken | None) -> T:
        return retrying(action, "huggingface.co", attempts, backoff, token)

    files = retry(lambda: hub.files(repo), cancel)
    weights, mmproj = select_gguf(files, ref.tag)
    if not weights:
        raise UnsupportedFormatError(f"hf.co/{repo} has no GGUF file")
    chosen = [*weights, mmproj] if mmproj else list(weights)
    unverifiable = [f.path for f in chosen if f.sha256 is None]
    if unverifiable:
        raise UnsupportedFormatError(f"hf.co/{repo}: {', '.join(unverifiable)} not stored with Git LFS (no sha256)")
    created = retry(lambda: hub.last_modified(repo), cancel)
    tracker = ProgressTracker(progress, sum(f.size for f in chosen))
    stop = Cancellation(cancel)

    def layer(f: RepoFile, media_type: str) -> artifact.Layer:
        digest = f"sha256:{f.sha256}"
        return layer_from_file(store.blobs.path(digest), media_type, name=f.name, mtime=created, digest=digest)

    # Held until the model is recorded: no removal or repair deletes a file downloaded (or found) meanwhile.
    with store.pinned(f"sha256:{f.sha256}" for f in chosen):
        for f in chosen:
            url, what = hub.file_url(repo, f.path), f"hf.co/{repo}/{f.path}"
            download_blob(
                store.blobs,
                f"sha256:{f.sha256}",
                f.size,
                functools.partial(hub.get, url, what),
                lambda action: retry(action, stop),
                tracker,
                stop,
            )
        layers = [layer(f, artifact.GGUF) for f in weights]
        if mmproj is not None:
            layers.append(layer(mmproj, artifact.MMPROJ))
        config = model_config([store.blobs.path(la.digest) for la in layers[: len(weights)]])
        return store.write_artifact(artifact.build_artifact(config, layers, created), [str(ref)])
