"""Models as OCI artifacts, in Docker Model Runner's format: references, packaging, the store, registries.

A plain library (no web framework, no llama_cpp), safe to call from worker threads. Names are loaded
on first use, so importing this package stays cheap for the CLI.

Store (`Store(root=None)`, default root `settings.models_path()`):
    list() -> list[Model]; get(name_or_id) -> Model (any reference form, ID or 12+ hex ID prefix;
    ModelNotFoundError); tag(source, target) (a tag belongs to one model: it moves);
    remove(name_or_id, force=False) -> [("Untagged", canonical tag), ("Deleted", id)] (ConflictError for
    an ID of a multi-tag model without force); bundle(model) -> Bundle(root, gguf_path, mmproj_path,
    template_path, config_path); disk_usage() -> int; check(repair=False) -> list[str];
    check_report(repair=False) -> CheckReport (also what was verified); load(tar_stream, tags=()) -> Model
    (an OCI image layout or DMR's load tar; a refused one leaves nothing); write_artifact(artifact, tags)
    -> Model; purge(); add_tags(model_id, tags); has_model(model_id); record_use({model_id: unix time}).
    Model archives (`save`): store/oci_layout.py; last use and pruning: store/usage.py.

RegistryClient(store, docker_config=None, insecure_registries=(), attempts=4, backoff=0.5):
    pull(reference, progress=None, cancel=None) -> Model (also hf.co/<org>/<repo>[:<quant>], tagged
    huggingface.co/... as Docker Model Runner tags it); push(reference, progress=None);
    push_artifact(artifact, reference, progress=None); remote(reference) -> (Model, capabilities): a model
    read from its registry without pulling it.
    `progress` gets ProgressEvent(layer_digest, layer_size, current, total, message), one call at a time.

package(gguf, licenses=(), chat_template=None, mmproj=None, context_size=None, created=None) -> Artifact
    (a sharded GGUF is named by its first `*-00001-of-0000N.gguf`).
write_model_tar(artifact, sink): the artifact as the tar `Store.load` (DMR's `POST /models/load`) reads.
config_fields.trained_context_length(config): the context a model was trained for.
capabilities.stored_capabilities(model, blob_path) -> ["chat", "tools", ...]: what a model can do.

Model(id, tags, created, config, manifest, size) with short_id, layers, config_digest.

Errors: DistributionError and its subclasses ModelNotFoundError, UnsupportedFormatError,
RegistryUnreachableError, RegistryError, AuthenticationError, DigestMismatchError, AnswerTooLargeError,
ConflictError, PullCancelledError, StoreCorruptError; InvalidReferenceError (a ValueError) is re-exported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AnswerTooLargeError": "docker_model.distribution.errors",
    "Artifact": "docker_model.distribution.artifact",
    "Layer": "docker_model.distribution.artifact",
    "Bundle": "docker_model.distribution.store.bundles",
    "Store": "docker_model.distribution.store",
    "Model": "docker_model.distribution.model",
    "ProgressEvent": "docker_model.distribution.progress",
    "RegistryClient": "docker_model.distribution.registry",
    "package": "docker_model.distribution.packaging",
    "write_model_tar": "docker_model.distribution.store.tarball",
    "AuthenticationError": "docker_model.distribution.errors",
    "ConflictError": "docker_model.distribution.errors",
    "DigestMismatchError": "docker_model.distribution.errors",
    "DistributionError": "docker_model.distribution.errors",
    "InvalidReferenceError": "docker_model.distribution.errors",
    "ModelNotFoundError": "docker_model.distribution.errors",
    "PullCancelledError": "docker_model.distribution.errors",
    "RegistryError": "docker_model.distribution.errors",
    "RegistryUnreachableError": "docker_model.distribution.errors",
    "StoreCorruptError": "docker_model.distribution.errors",
    "UnsupportedFormatError": "docker_model.distribution.errors",
}
__all__ = [
    "AnswerTooLargeError",
    "Artifact",
    "AuthenticationError",
    "Bundle",
    "ConflictError",
    "DigestMismatchError",
    "DistributionError",
    "InvalidReferenceError",
    "Layer",
    "Model",
    "ModelNotFoundError",
    "ProgressEvent",
    "PullCancelledError",
    "RegistryClient",
    "RegistryError",
    "RegistryUnreachableError",
    "Store",
    "StoreCorruptError",
    "UnsupportedFormatError",
    "package",
    "write_model_tar",
]

if TYPE_CHECKING:
    from docker_model.distribution.artifact import Artifact, Layer
    from docker_model.distribution.errors import (
        AnswerTooLargeError,
        AuthenticationError,
        ConflictError,
        DigestMismatchError,
        DistributionError,
        InvalidReferenceError,
        ModelNotFoundError,
        PullCancelledError,
        RegistryError,
        RegistryUnreachableError,
        StoreCorruptError,
        UnsupportedFormatError,
    )
    from docker_model.distribution.model import Model
    from docker_model.distribution.packaging import package
    from docker_model.distribution.progress import ProgressEvent
    from docker_model.distribution.registry import RegistryClient
    from docker_model.distribution.store import Store
    from docker_model.distribution.store.bundles import Bundle
    from docker_model.distribution.store.tarball import write_model_tar


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
