"""hf.co references: file selection, and a pull against a stand-in for Hugging Face's HTTP API.

Hugging Face cannot be reached from here, so a small local server answers the three endpoints the
client uses (tree listing, model info, `resolve` with a redirect and Range support), with the same
JSON shapes. Everything on the client side is the real code path.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from docker_model.distribution import AuthenticationError, ModelNotFoundError, RegistryClient, Store
from docker_model.distribution.registry.huggingface import HuggingFace, RepoFile, select_gguf
from docker_model.distribution.registry.transport import new_session
from tests.fixtures.gguf_files import write_gguf

TOKEN = "hf_test_token"


def files(*names: str) -> list[RepoFile]:
    return [RepoFile(name, 1, "0" * 64) for name in names]


def test_selection_follows_the_tag_then_q4_k_m_then_the_first() -> None:
    repo = files("m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-F16.gguf", "README.md", "mmproj-m-f16.gguf")
    chosen, mmproj = select_gguf(repo, "Q8_0")
    assert [f.name for f in chosen] == ["m-Q8_0.gguf"]
    assert mmproj is not None and mmproj.name == "mmproj-m-f16.gguf"
    assert [f.name for f in select_gguf(repo, "latest")[0]] == ["m-Q4_K_M.gguf"]
    assert [f.name for f in select_gguf(repo, "q4_k_m")[0]] == ["m-Q4_K_M.gguf"]
    assert [f.name for f in select_gguf(files("b-Q5_0.gguf", "a-IQ2.gguf"), None)[0]] == ["a-IQ2.gguf"]
    assert [f.name for f in select_gguf(files("only.gguf"), "Q8_0")[0]] == ["only.gguf"]
    assert select_gguf(files("README.md"), None) == ([], None)


def test_selection_keeps_shards_together() -> None:
    repo = files("Q8_0/m-Q8_0-00002-of-00002.gguf", "Q8_0/m-Q8_0-00001-of-00002.gguf", "m-Q4_K_S.gguf", "m-Q2_K.gguf")
    chosen, _ = select_gguf(repo, "Q8_0")
    assert [f.path for f in chosen] == ["Q8_0/m-Q8_0-00001-of-00002.gguf", "Q8_0/m-Q8_0-00002-of-00002.gguf"]
    first, _ = select_gguf(files("m-00002-of-00002.gguf", "m-00001-of-00002.gguf", "z.gguf"), None)
    assert [f.name for f in first] == ["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"]


class FakeHub:
    """Serves one repository `org/repo-gguf` holding the given files, behind a Bearer token."""

    def __init__(self, repo_files: dict[str, bytes]) -> None:
        self.files = repo_files
        self.blob_requests: list[tuple[str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.reply(401, b'{"error":"Invalid credentials"}')
                if self.path == "/api/models/org/repo-gguf/tree/main?recursive=true":
                    listing = [
                        {
                            "type": "file",
                            "path": name,
                            "size": 130,
                            "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data)},
                        }
                        for name, data in hub.files.items()
                    ]
                    listing.append({"type": "directory", "path": "docs", "size": 0})
                    return self.reply(200, json.dumps(listing).encode())
                if self.path == "/api/models/org/repo-gguf":
                    return self.reply(200, b'{"id":"org/repo-gguf","lastModified":"2025-01-02T03:04:05.000Z"}')
                if match := re.fullmatch(r"/org/repo-gguf/resolve/main/(.+)", self.path):
                    return self.reply(302, headers={"Location": f"/cdn/{match[1]}"})
                if (match := re.fullmatch(r"/cdn/(.+)", self.path)) and match[1] in hub.files:
                    data = hub.files[match[1]]
                    rng = self.headers.get("Range")
                    hub.blob_requests.append((match[1], rng))
                    if rng:
                        start = int(rng.removeprefix("bytes=").rstrip("-"))
                        return self.reply(
                            206, data[start:], {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                        )
                    return self.reply(200, data)
                return self.reply(404, b'{"error":"Repository not found"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    q4 = write_gguf(tmp_path / "q4.gguf", seed=4).read_bytes()
    q8 = write_gguf(tmp_path / "q8.gguf", seed=8).read_bytes()
    server = FakeHub({"repo-Q4_K_M.gguf": q4, "repo-Q8_0.gguf": q8, "README.md": b"# readme"})
    yield server
    server.close()


def hf_client(tmp_path: Path, hub: FakeHub, token: str | None = TOKEN) -> RegistryClient:
    return RegistryClient(
        Store(tmp_path / "store"),
        docker_config=tmp_path,
        backoff=0.01,
        huggingface=HuggingFace(new_session(), endpoint=hub.endpoint, token=token),
    )


def test_pull_builds_the_artifact_from_the_gguf(tmp_path: Path, hub: FakeHub) -> None:
    client = hf_client(tmp_path, hub)
    model = client.pull("hf.co/org/repo-gguf:Q8_0")
    assert model.tags == ["huggingface.co/org/repo-gguf:Q8_0"]  # as Docker Model Runner tags it
    [layer] = model.layers
    assert layer.filepath == "repo-Q8_0.gguf"
    assert client.store.blobs.path(layer.digest).read_bytes() == hub.files["repo-Q8_0.gguf"]
    assert model.config["gguf"]["general.name"] == "tiny-8"
    assert model.created == 1735787045  # the repository's lastModified: re-pulls give the same ID

    again = client.pull("huggingface.co/org/repo-gguf:Q8_0")
    assert again.id == model.id
    assert [name for name, _ in hub.blob_requests] == ["repo-Q8_0.gguf"]  # nothing downloaded twice

    default = client.pull("hf.co/org/repo-gguf")
    assert default.layers[0].filepath == "repo-Q4_K_M.gguf"
    assert default.tags == ["huggingface.co/org/repo-gguf:latest"]


def test_pull_resumes_a_partial_file(tmp_path: Path, hub: FakeHub) -> None:
    client = hf_client(tmp_path, hub)
    data = hub.files["repo-Q4_K_M.gguf"]
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    partial = client.store.layout.incomplete(digest)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[:1000])
    client.pull("hf.co/org/repo-gguf")
    assert hub.blob_requests == [("repo-Q4_K_M.gguf", "bytes=1000-")]
    assert client.store.blobs.path(digest).read_bytes() == data


def test_token_problems_say_to_set_hf_token(tmp_path: Path, hub: FakeHub) -> None:
    with pytest.raises(AuthenticationError, match="set HF_TOKEN"):
        hf_client(tmp_path, hub, token="").pull("hf.co/org/repo-gguf")
    with pytest.raises(AuthenticationError, match="rejected"):
        hf_client(tmp_path, hub, token="hf_wrong").pull("hf.co/org/repo-gguf")


def test_unknown_repository(tmp_path: Path, hub: FakeHub) -> None:
    with pytest.raises(ModelNotFoundError, match="on Hugging Face"):
        hf_client(tmp_path, hub).pull("hf.co/org/missing")
