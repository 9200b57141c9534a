"""`docker model search` through the real docker CLI. Docker Hub's and Hugging Face's web APIs cannot be
reached from here, so local HTTP servers stand in for them (`tests/fixtures/search_services.py`); the
settings that point the CLI at the real services (DOCKER_MODEL_HUB_URL, HF_ENDPOINT) point it at these."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.registry import free_port
from tests.fixtures.search_services import HF_MODELS, HUB_PAGES, FakeService

pytestmark = pytest.mark.integration


@pytest.fixture
def search(
    installed_plugin: Path, hub: FakeService, hf: FakeService
) -> Callable[..., subprocess.CompletedProcess[str]]:
    cli = DockerCLI(installed_plugin, {"DOCKER_MODEL_HUB_URL": hub.url, "HF_ENDPOINT": hf.url})
    return lambda *args: cli.run("model", "search", *args)


def rows(output: str) -> list[list[str]]:
    """A table's cells: columns are two or more spaces apart."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()]


def test_a_term_finds_docker_hub_models_then_hugging_face_ones(
    search: Callable[..., subprocess.CompletedProcess[str]], hub: FakeService, hf: FakeService
) -> None:
    result = search("llama")
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert table[0] == ["NAME", "DESCRIPTION", "DOWNLOADS", "STARS", "SOURCE"]
    # Docker Hub's repositories match by name or description, across its pages; private ones never show.
    assert [row[0] for row in table[1:]] == [
        "ai/llama3.2",
        "ai/smollm2",
        "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF",
        "hf.co/someone/llama-notes-GGUF",
    ]
    assert table[1] == ["ai/llama3.2", "Meta's Llama 3.2: small, multilingual models", "1.2M", "42", "Docker Hub"]
    assert table[2][1] == "Tiny LLM built for speed, edge devices and llam..."  # cut at 50 characters
    assert table[2][2:] == ["45.6K", "7", "Docker Hub"]
    assert table[3][1:] == [
        "text-generation, from meta-llama/Llama-3.2-1B-I...",
        "250.0K",
        "1.5K",
        "HuggingFace",
    ]
    assert [path for path, _ in hub.asked] == ["/v2/repositories/ai/"] * 2  # the second page followed
    assert hub.asked[0][1]["ordering"] == ["pull_count"]
    (path, query), *_ = hf.asked
    assert path == "/api/models"
    assert (query["search"], query["filter"], query["sort"]) == (["llama"], ["gguf"], ["downloads"])


def test_json_limit_and_source(search: Callable[..., subprocess.CompletedProcess[str]], hub: FakeService) -> None:
    result = search("--json", "--limit", "3")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [r["Name"] for r in found] == ["ai/llama3.2", "ai/gemma3", "ai/smollm2"]  # most pulled first
    assert found[0] == {
        "Name": "ai/llama3.2",
        "Description": "Meta's Llama 3.2: small, multilingual models",
        "Downloads": 1_234_567,
        "Stars": 42,
        "Source": "Docker Hub",
        "Official": True,
        "UpdatedAt": "2025-05-02T10:11:12.123456Z",
        "Backend": "unknown",
        "Size": 0,
    }
    asked_hub = len(hub.asked)
    only_hf = json.loads(search("--source", "hf", "--json").stdout)
    assert [r["Name"] for r in only_hf] == [str(m["id"]) for m in HF_MODELS]
    assert {r["Backend"] for r in only_hf} == {"llama.cpp"}
    assert len(hub.asked) == asked_hub  # Docker Hub was not asked
    nothing = search("no-such-model")
    assert (nothing.returncode, nothing.stdout.strip()) == (0, 'No models found matching "no-such-model"')
    assert json.loads(search("no-such-model", "--json").stdout) == []


def test_a_source_that_fails_is_a_warning_and_both_an_error(
    search: Callable[..., subprocess.CompletedProcess[str]], hub: FakeService, hf: FakeService
) -> None:
    hub.answer = lambda path, query: (503, b"<html>maintenance</html>")
    partial = search("llama")
    assert partial.returncode == 0, partial.stderr
    assert (
        partial.stderr.strip()
        == "Warning: failed to search Docker Hub: Docker Hub answered HTTP 503 Service Unavailable"
    )
    assert "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF" in partial.stdout
    hf.answer = lambda path, query: (200, b"{not json")
    failed = search("llama")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert failed.stderr.startswith("Error: search failed: Docker Hub: Docker Hub answered HTTP 503")
    assert "HuggingFace: HuggingFace sent an answer that is not JSON" in failed.stderr
    hub.answer = lambda path, query: (429, b'{"message": "too many requests"}')
    limited = search("--source", "hub", "llama")
    assert limited.stderr.strip() == (
        "Error: search failed: Docker Hub: Docker Hub limits how often it is asked (HTTP 429): try again later"
    )


def test_an_unreachable_service_is_one_line(installed_plugin: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    cli = DockerCLI(installed_plugin, {"DOCKER_MODEL_HUB_URL": nowhere, "HF_ENDPOINT": nowhere})
    result = cli.run("model", "search", "llama")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: search failed: Docker Hub: cannot reach Docker Hub at 127.0.0.1: ConnectionError; "
        "HuggingFace: cannot reach HuggingFace at 127.0.0.1: ConnectionError"
    )


def test_a_next_page_on_another_server_is_not_followed(
    search: Callable[..., subprocess.CompletedProcess[str]], hub: FakeService
) -> None:
    elsewhere = f"http://localhost:{free_port()}/v2/repositories/ai/?page=2"
    hub.answer = lambda path, query: (
        200,
        json.dumps({"count": 9, "next": elsewhere, "results": HUB_PAGES[0]}).encode(),
    )
    result = search("--source", "dockerhub", "--json")
    assert result.returncode == 0, result.stderr
    assert [r["Name"] for r in json.loads(result.stdout)] == ["ai/llama3.2", "ai/gemma3"]
    assert len(hub.asked) == 1


@pytest.mark.parametrize(
    ("args", "env", "problem"),
    [
        (["--source", "gitlab"], {}, "Invalid value for '--source'"),
        (["--limit", "0"], {}, "Invalid value for '-n' / '--limit'"),
        ([], {"DOCKER_MODEL_HUB_URL": "ftp://hub"}, "DOCKER_MODEL_HUB_URL is not a valid URL: 'ftp://hub'"),
    ],
)
def test_bad_options_and_settings_are_named(
    installed_plugin: Path, args: list[str], env: dict[str, str], problem: str
) -> None:
    result = DockerCLI(installed_plugin, env).run("model", "search", *args)
    assert result.returncode in (1, 2)
    assert problem in result.stderr and "Traceback" not in result.stderr
