"""Reading derived facts from a model's config object (the `config` part of the config blob)."""

from __future__ import annotations

from typing import Any


def trained_context_length(config: dict[str, Any]) -> int | None:
    """The model's trained maximum context, from its GGUF metadata (`<architecture>.context_length`)."""
    metadata = config.get("gguf") or {}
    architecture = config.get("architecture") or metadata.get("general.architecture")
    value = metadata.get(f"{architecture}.context_length")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
