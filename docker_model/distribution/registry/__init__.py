"""Moving models between the local store and registries (OCI registries and Hugging Face)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

from docker_model.api_types import Capability
from docker_model.distribution.artifact import Artifact
from docker_model.distribution.cancel import CancelToken
from docker_model.distribution.model import Model
from docker_model.distribution.progress import ProgressCallback
from docker_model.distribution.registry.credentials import find_credentials
from docker_model.distribution.registry.httpio import TIMEOUT
from docker_model.distribution.registry.huggingface import HuggingFace, pull_huggingface
from docker_model.distribution.registry.pull import pull_model
from docker_model.distribution.registry.push import BlobSource, push_blobs_and_manifest
from docker_model.distribution.registry.remote import remote_model
from docker_model.distribution.registry.transport import Transport, is_insecure, new_session
from docker_model.distribution.store import Store
from docker_model.reference import InvalidReferenceError, parse_reference

__all__ = ["RegistryClient"]


class RegistryClient:
    """Pull and push models for one store. Safe to use from several threads at once.

    `docker_config` is a Docker configuration directory (default `$DOCKER_CONFIG`, else `~/.docker`)
    whose `config.json` holds `docker login` credentials. Retries: `attempts` tries in all, pauses
    doubling from `backoff` seconds. `timeout`: (connect, read) seconds for every request to a registry,
    a read that stalls longer fails (and is retried).
    """

    def __init__(
        self,
        store: Store,
        docker_config: Path | None = None,
        insecure_registries: Iterable[str] = (),
        attempts: int = 4,
        backoff: float = 0.5,
        huggingface: HuggingFace | None = None,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        if docker_config is None:
            from docker_model import settings

            docker_config = settings.docker_config_dir()
        self.store = store
        self._docker_config = Path(docker_config)
        self._insecure = frozenset(insecure_registries)
        self._attempts = attempts
        self._backoff = backoff
        self._timeout = timeout
        self._session = new_session()
        self._huggingface = huggingface or HuggingFace(self._session)
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()

    def transport(self, registry: str, bearer_token: str | None = None) -> Transport:
        """The connection to `registry`, with the credentials `docker login` saved for it (if any); with
        `bearer_token`, a connection of its own that sends that token instead."""
        if bearer_token is not None:
            return Transport(
                registry,
                self._session,
                None,
                is_insecure(registry, self._insecure),
                self._attempts,
                self._backoff,
                self._timeout,
                bearer_token,
            )
        with self._lock:
            if registry not in self._transports:
                self._transports[registry] = Transport(
                    registry,
                    self._session,
                    find_credentials(self._docker_config, registry),
                    is_insecure(registry, self._insecure),
                    self._attempts,
                    self._backoff,
                    self._timeout,
                )
            return self._transports[registry]

    def pull(
        self,
        reference: str,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        bearer_token: str | None = None,
    ) -> Model:
        """Pull `reference` into the store (layers already there are not fetched again) and return it.

        `progress` receives ProgressEvents from worker threads, one call at a time. Setting `cancel`
        stops the pull with PullCancelledError, leaving partial files for the next pull to resume.
        `bearer_token`: a token the registry (or Hugging Face, instead of HF_TOKEN) accepts, sent in place
        of any saved credentials, with the same care (its own origin, HTTPS or loopback only).
        """
        ref = parse_reference(reference)
        if ref.digest is not None and self.store.has_model(ref.digest):
            self.store.record_use({ref.digest: time.time()})  # pulled again: in use, as a first pull is
            return self.store.get(ref.digest)
        if ref.is_huggingface:
            hub = self._huggingface
            if bearer_token is not None:
                hub = HuggingFace(self._session, hub.endpoint, bearer_token)
            return pull_huggingface(hub, self.store, ref, progress, cancel, self._attempts, self._backoff)
        return pull_model(self.transport(ref.registry, bearer_token), self.store, ref, progress, cancel)

    def remote(self, reference: str) -> tuple[Model, list[Capability]]:
        """The model `reference` names in its registry, and its capabilities, read without pulling it
        (`registry/remote.py`). Hugging Face repositories become models only when pulled: refused."""
        ref = parse_reference(reference)
        if ref.is_huggingface:
            raise InvalidReferenceError(
                reference, "a Hugging Face repository becomes a model only when pulled: pull it, then inspect it"
            )
        return remote_model(self.transport(ref.registry), ref)

    def push(self, reference: str, progress: ProgressCallback | None = None) -> None:
        """Push the stored model tagged `reference` to the registry it names."""
        model = self.store.get(reference)
        blobs = self.store.blobs
        sources = [
            BlobSource(model.config_digest, blobs.size(model.config_digest), path=blobs.path(model.config_digest))
        ]
        sources += [BlobSource(layer.digest, layer.size, path=blobs.path(layer.digest)) for layer in model.layers]
        ref = parse_reference(reference)
        manifest = self.store.manifests.read(model.id)
        push_blobs_and_manifest(self.transport(ref.registry), ref, manifest, sources, progress)

    def push_artifact(self, artifact: Artifact, reference: str, progress: ProgressCallback | None = None) -> None:
        """Push a packaged artifact straight from its source files, without storing it locally."""
        sources = [BlobSource(artifact.config_digest, len(artifact.config_bytes), data=artifact.config_bytes)]
        sources += [BlobSource(layer.digest, layer.size, path=layer.source) for layer in artifact.layers]
        ref = parse_reference(reference)
        push_blobs_and_manifest(self.transport(ref.registry), ref, artifact.manifest_bytes, sources, progress)
