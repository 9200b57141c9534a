"""A model as the store holds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docker_model.distribution.artifact import Layer, manifest_layers
from docker_model.reference import short_id


@dataclass
class Model:
    """A stored model; `id` is the sha256 of its raw manifest, `tags` are canonical, `created` unix time."""

    id: str
    tags: list[str]
    created: int
    config: dict[str, Any]
    manifest: dict[str, Any]
    size: int

    @property
    def short_id(self) -> str:
        return short_id(self.id)

    @property
    def layers(self) -> list[Layer]:
        return manifest_layers(self.manifest)

    @property
    def config_digest(self) -> str:
        return self.manifest["config"]["digest"]
