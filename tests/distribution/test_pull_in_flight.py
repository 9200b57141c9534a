"""Pulls from the real docker-registry while the store is tidied: what a pull holds until it records its
model is never deleted, and pulling a stored model again counts as using it (for `prune`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from docker_model.distribution import RegistryClient, Store, package
from docker_model.distribution.store import usage
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.integration

DAY = 24 * 3600.0


def puller(tmp_path: Path) -> RegistryClient:
    return RegistryClient(Store(tmp_path / "models"), docker_config=tmp_path / "no-docker-config", backoff=0.01)


def test_a_pull_survives_a_repair_and_a_removal_before_it_records(
    tmp_path: Path, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v2 shares v1's GGUF and has a layer of its own; between its downloads and its record, another request
    removes v1 (as `rm` or `prune` does) and runs `check --repair`: the pull still records v2."""
    gguf, extra = write_gguf(tmp_path / "m.gguf", seed=5), tmp_path / "LICENSE"
    extra.write_text("a license of its own")
    source = puller(tmp_path / "source")
    v1, v2 = f"{registry.host}/ai/m:v1", f"{registry.host}/ai/m:v2"
    source.push_artifact(package(gguf), v1)
    source.push_artifact(package(gguf, licenses=[extra], context_size=512), v2)

    client = puller(tmp_path)
    store = client.store
    client.pull(v1)
    problems: list[list[str]] = []
    record = store.record

    def meanwhile_then_record(*args: Any, **kwargs: Any) -> Any:
        store.remove(v1)
        problems.append(store.check(repair=True))
        return record(*args, **kwargs)

    monkeypatch.setattr(store, "record", meanwhile_then_record)
    model = client.pull(v2)
    assert problems == [[]]  # the blobs the pull holds are no leftovers
    assert [m.tags for m in store.list()] == [[v2]] and model.tags == [v2]
    monkeypatch.undo()
    assert store.check() == []


def test_pulling_a_stored_model_again_counts_as_using_it(tmp_path: Path, registry: RegistryServer) -> None:
    name = f"{registry.host}/ai/again:v1"
    puller(tmp_path / "source").push_artifact(package(write_gguf(tmp_path / "a.gguf", seed=6)), name)
    client = puller(tmp_path)
    model = client.pull(name)
    client.pull(f"{registry.host}/ai/again@{model.id}")  # by digest too
    for again in (name, f"{registry.host}/ai/again@{model.id}"):
        client.store.layout.usage_file.write_text(json.dumps({"models": {model.id: "2020-01-01T00:00:00Z"}}))
        assert client.pull(again).id == model.id
        assert time.time() - usage.read_last_used(client.store)[model.id] < DAY, again
