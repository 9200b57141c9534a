"""What a model can do (`chat`, `embeddings`, `tools`, `vision`, `reasoning`), read from its GGUF metadata,
its chat template and its layers. Docker Model Runner shows none of this; the names (`api_types.Capability`)
are listed in a fixed order.

The rules, from what llama.cpp does with a model:
- embeddings: an encoder architecture (`bert`, `nomic-bert`, ...), or a pooling type and no chat template;
- chat: any model that is not embeddings-only (llama.cpp applies a default template where there is none);
- tools: its chat template takes `tools` or renders `tool_calls`;
- vision: a multimodal projector layer (`application/vnd.docker.ai.mmproj`);
- reasoning: its template writes or strips `<think>`, or takes `reasoning_content`, `enable_thinking`,
  `thinking` or `reasoning_effort`.
Only the template's code is searched (`{{ ... }}`, `{% ... %}`), so a system prompt that mentions tools
does not make a model a tool user; `<think>` counts anywhere.
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from docker_model.api_types import Capability
from docker_model.distribution import artifact
from docker_model.distribution.model import Model

CAPABILITIES: tuple[Capability, ...] = get_args(Capability)
EMBEDDING_ARCHITECTURES = frozenset(
    {
        "bert",
        "modern-bert",
        "nomic-bert",
        "nomic-bert-moe",
        "neo-bert",
        "jina-bert-v2",
        "jina-bert-v3",
        "eurobert",
        "gemma-embedding",
        "t5encoder",
    }
)
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"  # also `tokenizer.chat_template.<name>`: named variants (tool_use)
MAX_TEMPLATE_BYTES = 1 << 20  # a template layer longer than this is not read

_TEMPLATE_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_TOOLS = re.compile(r"\b(?:tools|tool_calls)\b")
_REASONING = re.compile(r"\b(?:reasoning_content|enable_thinking|thinking|reasoning_effort)\b")
_THINK_TAG = re.compile(r"</?think>")

BlobPath = Callable[[str], Path]  # where the store keeps a blob, by digest

_cache: dict[str, list[Capability]] = {}  # by model ID: its manifest, so its files, never change
_cache_lock = threading.Lock()


def derive(metadata: Mapping[str, Any], templates: Iterable[str], layer_media_types: Iterable[str]) -> list[Capability]:
    """The capabilities of a model with this GGUF metadata, these chat templates and layers of these types."""
    templates = [template for template in templates if template]
    code = "\n".join(match for template in templates for match in _TEMPLATE_CODE.findall(template))
    architecture = str(metadata.get("general.architecture", ""))
    embeddings = architecture in EMBEDDING_ARCHITECTURES or (
        f"{architecture}.pooling_type" in metadata and not templates
    )
    found: dict[Capability, bool] = {
        "chat": not embeddings,
        "embeddings": embeddings,
        "tools": bool(_TOOLS.search(code)),
        "vision": artifact.MMPROJ in set(layer_media_types),
        "reasoning": bool(_REASONING.search(code)) or any(_THINK_TAG.search(t) for t in templates),
    }
    return [name for name in CAPABILITIES if found[name]]


def gguf_templates(metadata: Mapping[str, Any]) -> list[str]:
    """The chat templates a GGUF carries: the default one and any named variants."""
    return [
        str(value)
        for key, value in metadata.items()
        if key == CHAT_TEMPLATE_KEY or key.startswith(f"{CHAT_TEMPLATE_KEY}.")
    ]


def capabilities(
    model: Model, template_layer: str | None = None, metadata: Mapping[str, Any] | None = None
) -> list[Capability]:
    """A model's capabilities from its config's GGUF metadata (or `metadata`, where the config has none) and
    its chat template: `template_layer` (the text of its template layer, which replaces the GGUF's) when
    it has one."""
    if metadata is None:
        metadata = model.config.get("gguf") or {}
    if "general.architecture" not in metadata and model.config.get("architecture"):
        metadata = {**metadata, "general.architecture": model.config["architecture"]}
    templates = [template_layer] if template_layer else gguf_templates(metadata)
    return derive(metadata, templates, (layer.media_type for layer in model.layers))


def stored_capabilities(model: Model, blob_path: BlobPath) -> list[Capability]:
    """`capabilities` of a stored model, its files read through `blob_path(digest) -> Path`: the template layer,
    and the GGUF header when the config holds no metadata (the header only, never the weights). Worked out
    once per model ID."""
    with _cache_lock:
        found = _cache.get(model.id)
    if found is None:
        found = capabilities(model, _template_layer(model, blob_path), _header_metadata(model, blob_path))
        with _cache_lock:
            _cache[model.id] = found
    return list(found)


def forget_capabilities(model_id: str) -> None:
    """Drop what was worked out for a model that was deleted: pulled again, perhaps whole where it was not,
    it is read afresh."""
    with _cache_lock:
        _cache.pop(model_id, None)


def backend_mode(model: Model, blob_path: BlobPath) -> Literal["completion", "embedding"]:
    """What a stored model serves, as Docker Model Runner names it (`ps`, `_configure`): embeddings-only
    models are `embedding`."""
    return "embedding" if "embeddings" in stored_capabilities(model, blob_path) else "completion"


def _template_layer(model: Model, blob_path: BlobPath) -> str | None:
    layer = next((la for la in model.layers if la.media_type == artifact.CHAT_TEMPLATE), None)
    if layer is None or layer.size > MAX_TEMPLATE_BYTES:
        return None
    try:
        return blob_path(layer.digest).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None  # a missing blob is `check`'s to report; the GGUF's template stands


def _header_metadata(model: Model, blob_path: BlobPath) -> dict[str, Any] | None:
    """The first GGUF layer's header metadata when the config carries none, else None (the config's)."""
    if model.config.get("gguf"):
        return None
    layer = next((la for la in model.layers if la.media_type == artifact.GGUF), None)
    if layer is None:
        return None
    from docker_model.distribution.gguf_header import GGUFHeader

    try:
        return GGUFHeader(blob_path(layer.digest)).values
    except (OSError, ValueError, struct.error):
        return None  # unreadable: judged from the config alone
