"""`docker model pull a b c`: several models at once from the real local registry, through the real docker
CLI and a runner it started; one line per model, every failure named, the successes kept."""

from __future__ import annotations

from pathlib import Path

import pexpect
import pytest

from docker_model.cli.transfer import create_body
from docker_model.distribution import RegistryClient, Store
from docker_model.distribution.packaging import package
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.integration


def push_models(registry: RegistryServer, tmp_path: Path, names: list[str]) -> list[str]:
    """Tiny models, one per name, pushed to the registry; their references."""
    client = RegistryClient(Store(tmp_path / "pusher"))
    references = []
    for seed, name in enumerate(names):
        reference = f"{registry.host}/ai/{name}:v1"
        client.push_artifact(package(write_gguf(tmp_path / f"{name}.gguf", seed)), reference)
        references.append(reference)
    return references


def listed(model_cli: DockerCLI) -> str:
    result = model_cli.run("model", "list")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pull_several_models_at_once(model_cli: DockerCLI, registry: RegistryServer, tmp_path: Path) -> None:
    references = push_models(registry, tmp_path, ["one", "two", "three"])
    result = model_cli.run("model", "pull", *references)
    assert result.returncode == 0, result.stderr
    for reference in references:
        assert f"{reference}: Model pulled successfully" in result.stdout.splitlines()
        assert f"{registry.host}/ai/{reference.split('/')[-1]}" in listed(model_cli)


def test_failures_are_named_and_successes_kept(model_cli: DockerCLI, registry: RegistryServer, tmp_path: Path) -> None:
    good, other = push_models(registry, tmp_path, ["kept", "also-kept"])
    missing = f"{registry.host}/ai/absent:v1"
    unreachable = "127.0.0.1:1/ai/nowhere:v1"
    result = model_cli.run("model", "pull", good, missing, unreachable, other)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: failed to pull")]
    assert len(errors) == 2, result.stderr
    assert any(missing in line and "not found" in line for line in errors)
    assert any(unreachable in line and "cannot reach registry" in line for line in errors)
    assert (
        f"{good}: Model pulled successfully" in result.stdout and f"{other}: Model pulled successfully" in result.stdout
    )
    models = listed(model_cli)
    assert "ai/kept" in models and "ai/also-kept" in models and "absent" not in models


def test_a_bad_name_stops_before_any_download(model_cli: DockerCLI, registry: RegistryServer, tmp_path: Path) -> None:
    (good,) = push_models(registry, tmp_path, ["never"])
    result = model_cli.run("model", "pull", good, "Bad Name!")
    assert result.returncode != 0 and "Bad Name!" in result.stderr
    assert "ai/never" not in listed(model_cli)


def test_one_bar_per_model_on_a_terminal(model_cli: DockerCLI, registry: RegistryServer, tmp_path: Path) -> None:
    references = push_models(registry, tmp_path, ["bar-a", "bar-b"])
    session = pexpect.spawn(
        "docker", ["model", "pull", *references], env=model_cli.environment(), encoding="utf-8", timeout=120
    )
    session.expect(pexpect.EOF)
    session.close()
    assert session.exitstatus == 0, session.before
    for reference in references:
        assert f"{reference}: Model pulled successfully" in session.before


def test_a_hugging_face_pull_carries_hf_token_as_bearer_token() -> None:
    """Which runners HF_TOKEN may go to: `test_context_tokens.py`."""
    body = create_body("hf.co/org/repo:Q4_K_M", "hf_secret")
    assert body == {"from": "hf.co/org/repo:Q4_K_M", "bearer-token": "hf_secret"}
    assert create_body("ai/smollm2", "hf_secret") == {"from": "ai/smollm2"}  # registries get their `docker login`
