"""`docker model search` through the real docker CLI. Docker Hub's and Hugging Face's web APIs cannot be
reached from here, so local HTTP servers stand in for them, answering in their real shapes (Docker Hub's
paged `/v2/repositories/ai/` listing, Hugging Face's `/api/models` search); the settings that point the
CLI at the real services (DOCKER_MODEL_HUB_URL, HF_ENDPOINT) point it at these."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.registry import free_port

pytestmark = pytest.mark.integration


def hub_repository(name: str, description: str, pulls: int, stars: int = 0, private: bool = False) -> dict[str, object]:
    """One repository as Docker Hub's `GET /v2/repositories/{namespace}/` lists it."""
    return {
        "name": name,
        "namespace": "ai",
        "repository_type": None,
        "status": 1,
        "status_description": "active",
        "description": description,
        "is_private": private,
        "star_count": stars,
        "pull_count": pulls,
        "last_updated": "2025-05-02T10:11:12.123456Z",
        "last_modified": "2025-05-02T10:11:12.123456Z",
        "date_registered": "2025-01-10T08:00:00.000000Z",
        "affiliation": "",
        "media_types": ["application/vnd.oci.image.index.v1+json"],
        "content_types": ["model"],
        "categories": [],
        "storage_size": 123456789,
    }


HUB_PAGES = [
    [
        hub_repository("llama3.2", "Meta's Llama 3.2: small, multilingual models", 1_234_567, 42),
        hub_repository("gemma3", "Google's latest Gemma, for text and images", 987_000, 30),
        hub_repository("secret-llama", "not for you", 5_000_000, private=True),
    ],
    [
        hub_repository("smollm2", "Tiny LLM built for speed, edge devices and llama.cpp", 45_600, 7),
        hub_repository("qwen3", "Qwen's newest", 999),
    ],
]

HF_MODELS = [
    {
        "_id": "66f1a2b3c4d5e6f708192a3b",
        "id": "bartowski/Llama-3.2-1B-Instruct-GGUF",
        "likes": 1500,
        "trendingScore": 3,
        "private": False,
        "downloads": 250_000,
        "tags": ["gguf", "llama", "text-generation", "base_model:quantized:meta-llama/Llama-3.2-1B-Instruct"],
        "pipeline_tag": "text-generation",
        "library_name": "gguf",
        "createdAt": "2024-09-25T18:00:00.000Z",
        "modelId": "bartowski/Llama-3.2-1B-Instruct-GGUF",
    },
    {
        "_id": "66f1a2b3c4d5e6f708192a3c",
        "id": "someone/llama-notes-GGUF",
        "likes": 2,
        "private": False,
        "downloads": 10,
        "tags": ["gguf"],
        "createdAt": "2024-10-01T00:00:00.000Z",
        "modelId": "someone/llama-notes-GGUF",
    },
]


Answer = Callable[[str, dict[str, list[str]]], tuple[int, bytes]]


@dataclass
class FakeService:
    """A local HTTP server answering as one of the real services would; tests may swap `answer`, and change
    how it is sent: another reason phrase, more headers, a body cut short after `cut` bytes."""

    answer: Answer
    url: str = ""
    asked: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cut: int | None = None


@contextmanager
def serving(answer: Answer) -> Iterator[FakeService]:
    service = FakeService(answer)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            service.asked.append((parts.path, query))
            status, body = service.answer(parts.path, query)
            self.send_response(status, service.reason)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in service.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body[: service.cut])

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


def docker_hub(service_url: Callable[[], str]) -> Answer:
    """Docker Hub's listing of the `ai/` namespace, two pages linked by `next` (an absolute URL, as Hub sends)."""

    def answer(path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        if path != "/v2/repositories/ai/":
            return 404, b'{"message": "object not found", "errinfo": {}}'
        page = int(query.get("page", ["1"])[0])
        following = (
            f"{service_url()}/v2/repositories/ai/?page={page + 1}&page_size=100" if page < len(HUB_PAGES) else None
        )
        body = {
            "count": sum(len(p) for p in HUB_PAGES),
            "next": following,
            "previous": None,
            "results": HUB_PAGES[page - 1],
        }
        return 200, json.dumps(body).encode()

    return answer


def hugging_face(path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
    if path != "/api/models":
        return 404, b'{"error": "Not Found"}'
    term = query.get("search", [""])[0].lower()
    return 200, json.dumps([m for m in HF_MODELS if term in str(m["id"]).lower()]).encode()


@pytest.fixture
def hub() -> Iterator[FakeService]:
    holder: list[FakeService] = []
    with serving(docker_hub(lambda: holder[0].url)) as service:
        holder.append(service)
        yield service


@pytest.fixture
def hf() -> Iterator[FakeService]:
    with serving(hugging_face) as service:
        yield service


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
