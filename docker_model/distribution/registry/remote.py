"""A model as its registry holds it, read without pulling it (`inspect --remote`): its manifest, its config
and, when it has one, its chat template layer (a few KiB); never its weights."""

from __future__ import annotations

import json

from docker_model.api_types import Capability
from docker_model.distribution import artifact
from docker_model.distribution.capabilities import MAX_TEMPLATE_BYTES, capabilities
from docker_model.distribution.errors import UnsupportedFormatError
from docker_model.distribution.model import Model
from docker_model.distribution.registry.pull import fetch_manifest, fetch_small_blob
from docker_model.distribution.registry.transport import Transport
from docker_model.reference import Reference


def remote_model(transport: Transport, ref: Reference) -> tuple[Model, list[Capability]]:
    """The model `ref` names in its registry (no tags: it is not in the store) and its capabilities.
    ModelNotFoundError when the registry has no such manifest."""
    raw = fetch_manifest(transport, ref)
    manifest = artifact.parse_manifest(raw)
    config = manifest["config"]
    artifact.check_size("the model config", config["size"], artifact.MAX_CONFIG_BYTES)
    try:
        document = json.loads(fetch_small_blob(transport, ref, config, "the model config"))
    except ValueError:
        raise UnsupportedFormatError("the model config is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("config") or {}, dict):
        raise UnsupportedFormatError("the model config is not a JSON object with a `config` object")
    layers = artifact.manifest_layers(manifest)
    model = Model(
        artifact.sha256_digest(raw),
        [],
        artifact.created_timestamp(document),
        document.get("config") or {},
        manifest,
        sum(layer.size for layer in layers),
    )
    template = next((la for la in layers if la.media_type == artifact.CHAT_TEMPLATE), None)
    text = None
    if template is not None and template.size <= MAX_TEMPLATE_BYTES:
        data = fetch_small_blob(transport, ref, template.descriptor(), "the chat template")
        text = data.decode("utf-8", errors="replace")
    return model, capabilities(model, text)
