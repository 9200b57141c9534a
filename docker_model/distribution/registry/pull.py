"""Pull a model from an OCI registry into the store: manifest, config, then layers in parallel."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from docker_model.distribution.artifact import (
    DOCKER_MANIFEST_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    check_size,
    manifest_layers,
    parse_manifest,
    sha256_digest,
)
from docker_model.distribution.cancel import Cancellation, CancelToken
from docker_model.distribution.errors import (
    DigestMismatchError,
    ModelNotFoundError,
    PullCancelledError,
    UnsupportedFormatError,
)
from docker_model.distribution.model import Model
from docker_model.distribution.progress import ProgressCallback, ProgressTracker
from docker_model.distribution.registry.download import Fetch, download_blob
from docker_model.distribution.registry.httpio import read_limited
from docker_model.distribution.registry.transport import Transport, registry_error
from docker_model.distribution.store import Store
from docker_model.reference import Reference

MANIFEST_ACCEPT = f"{MANIFEST_MEDIA_TYPE}, {DOCKER_MANIFEST_MEDIA_TYPE}"
MAX_PARALLEL_LAYERS = 4


def pull_scope(ref: Reference) -> str:
    return f"repository:{ref.repository}:pull"


def fetch_manifest(transport: Transport, ref: Reference, cancel: CancelToken | None = None) -> bytes:
    """The raw manifest `ref` names, checked against the reference's digest when it has one, else
    against the digest the registry announces (`Docker-Content-Digest`) when it announces a sha256.
    """
    url = transport.url(f"{ref.repository}/manifests/{ref.digest or ref.tag}")

    def get() -> tuple[bytes, str]:
        with transport.request("GET", url, pull_scope(ref), headers={"Accept": MANIFEST_ACCEPT}) as response:
            if response.status_code == 404:
                raise ModelNotFoundError(str(ref), f"in registry {ref.registry}")
            if response.status_code != 200:
                raise registry_error(ref.registry, response)
            announced = response.headers.get("Docker-Content-Digest", "")
            return read_limited(response, MAX_MANIFEST_BYTES, f"the manifest of {ref}"), announced

    raw, announced = transport.retrying(get, cancel)
    expected = ref.digest or (announced if announced.startswith("sha256:") else None)
    if expected is not None and sha256_digest(raw) != expected:
        raise DigestMismatchError(expected, sha256_digest(raw))
    return raw


def _blob_fetcher(transport: Transport, ref: Reference, digest: str) -> Fetch:
    url = transport.url(f"{ref.repository}/blobs/{digest}")

    def fetch(headers: dict[str, str]) -> requests.Response:
        response = transport.request("GET", url, pull_scope(ref), headers=headers)
        if response.status_code not in (200, 206):
            response.close()
            raise registry_error(ref.registry, response)
        return response

    return fetch


def fetch_small_blob(
    transport: Transport, ref: Reference, descriptor: dict[str, Any], what: str, cancel: CancelToken | None = None
) -> bytes:
    """A blob read whole (a config, a template), within the size its descriptor announces, checked against
    its digest."""
    digest, size = descriptor["digest"], descriptor["size"]
    fetch = _blob_fetcher(transport, ref, digest)

    def get() -> bytes:
        with fetch({}) as response:
            return read_limited(response, size, f"{what} of {ref}", announced=True)

    data = transport.retrying(get, cancel)
    if sha256_digest(data) != digest:
        raise DigestMismatchError(digest, sha256_digest(data))
    return data


def pull_model(
    transport: Transport,
    store: Store,
    ref: Reference,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Model:
    raw = fetch_manifest(transport, ref, cancel)
    manifest = parse_manifest(raw)
    tags = [str(ref)] if ref.digest is None else []
    model_id = sha256_digest(raw)
    if store.add_tags(model_id, tags):  # stored already (a model removed meanwhile is pulled again)
        store.record_use({model_id: time.time()})  # pulled again: in use, as a first pull is
        return store.get(model_id)

    config = manifest["config"]
    check_size("the model config", config["size"], MAX_CONFIG_BYTES)
    config_bytes = fetch_small_blob(transport, ref, config, "the model config", cancel)
    try:
        json.loads(config_bytes)
    except ValueError:
        raise UnsupportedFormatError("the model config is not JSON") from None

    layers = manifest_layers(manifest)
    tracker = ProgressTracker(progress, sum(layer.size for layer in layers))
    stop = Cancellation(cancel)

    def pull_layer(digest: str, size: int) -> None:
        try:
            download_blob(
                store.blobs,
                digest,
                size,
                _blob_fetcher(transport, ref, digest),
                lambda action: transport.retrying(action, stop),
                tracker,
                stop,
            )
        except BaseException:
            stop.set()  # one failed layer stops the others; their partial files stay for a resume
            raise

    # Until the model is recorded no model lists its blobs: held, no removal or repair deletes one meanwhile.
    with store.pinned([config["digest"], *(layer["digest"] for layer in manifest.get("layers", []))]):
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL_LAYERS, len(layers)))) as pool:
            futures = [pool.submit(pull_layer, layer.digest, layer.size) for layer in layers]
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:  # the layer that failed first matters, not the ones it stopped
            raise next((e for e in errors if not isinstance(e, PullCancelledError)), errors[0])
        store.blobs.write_bytes(config["digest"], config_bytes)  # only now: a failed pull leaves no config behind
        return store.record(raw, tags)
