"""Model names that are also route words (`purge`, `create`, `load`), and purging a store that shares its
folder with the user's own files: the real docker CLI, a runner it starts, the real registry."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration

NAMES = ("purge", "create", "load", "smollm2")


@pytest.fixture(scope="module")
def foreign_files(runner_env: RunnerEnv) -> list[Path]:
    """The user's own files in MODELS_PATH, there before the store was made."""
    runner_env.models_path.mkdir(parents=True)
    own_file = runner_env.models_path / "my-model.gguf"
    own_file.write_bytes(b"GGUF not the store's")
    own_folder = runner_env.models_path / "notes"
    own_folder.mkdir()
    (own_folder / "todo.txt").write_text("keep me")
    return [own_file, own_folder / "todo.txt"]


@pytest.fixture(scope="module")
def named_models(
    model_cli: DockerCLI, foreign_files: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> list[str]:
    """ai/purge, ai/create, ai/load and ai/smollm2: four tiny models with distinct weights."""
    workdir = tmp_path_factory.mktemp("ggufs")
    for seed, name in enumerate(NAMES):
        gguf = write_gguf(workdir / f"{name}.gguf", seed=seed)
        result = model_cli.run("model", "package", "--gguf", str(gguf), name)
        assert result.returncode == 0, result.stderr
    return [f"ai/{name}" for name in NAMES]


def listed(cli: DockerCLI) -> set[str]:
    result = cli.run("model", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {tag for model in json.loads(result.stdout) for tag in model["tags"]}


def test_rm_purge_removes_only_the_model_named_purge(model_cli: DockerCLI, named_models: list[str]) -> None:
    removed = model_cli.run("model", "rm", "purge")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.splitlines()[0] == "Untagged: ai/purge:latest"
    assert listed(model_cli) == {f"docker.io/ai/{name}:latest" for name in ("create", "load", "smollm2")}


def test_a_model_named_create_is_inspected_tagged_and_pushed(
    model_cli: DockerCLI, named_models: list[str], module_registry: RegistryServer
) -> None:
    inspected = model_cli.run("model", "inspect", "create")
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["tags"] == ["docker.io/ai/create:latest"]
    target = f"{module_registry.host}/ai/create:v1"
    tagged = model_cli.run("model", "tag", "create", target)
    assert tagged.returncode == 0, tagged.stderr
    pushed = model_cli.run("model", "push", target)
    assert pushed.returncode == 0, pushed.stderr
    tags = requests.get(f"{module_registry.url}/v2/ai/create/tags/list", timeout=10).json()
    assert tags["tags"] == ["v1"]
    loaded = model_cli.run("model", "inspect", "load")
    assert (loaded.returncode, json.loads(loaded.stdout)["tags"]) == (0, ["docker.io/ai/load:latest"])


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("word", ["purge", "create", "load"])
def test_a_bare_route_word_is_never_a_model_name(
    runner_env: RunnerEnv, named_models: list[str], method: str, word: str
) -> None:
    answer = requests.request(method, f"{runner_env.base_url}/models/{word}", timeout=10)
    assert answer.status_code in (400, 405), answer.text
    assert answer.json()["error"]["code"] in ("invalid_request", "method_not_allowed")
    assert "docker.io/ai/create:latest" in listed_via_api(runner_env)


def listed_via_api(runner_env: RunnerEnv) -> set[str]:
    return {tag for model in requests.get(f"{runner_env.base_url}/models", timeout=10).json() for tag in model["tags"]}


def test_purge_asks_first_and_keeps_what_is_not_the_stores(
    model_cli: DockerCLI, named_models: list[str], foreign_files: list[Path], runner_env: RunnerEnv
) -> None:
    declined = model_cli.run("model", "purge", input="n\n")
    assert declined.returncode == 1
    assert "removes all 3 model(s)" in declined.stderr  # create (two tags), load, smollm2
    assert "nothing was removed" in declined.stderr
    assert len(listed(model_cli)) == 4

    purged = model_cli.run("model", "purge", "--force")
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith("Removed 3 model(s)")
    assert listed(model_cli) == set()
    for path in foreign_files:
        assert path.exists(), f"purge removed {path}"
    assert foreign_files[0].read_bytes() == b"GGUF not the store's"
    left = sorted(p.relative_to(runner_env.models_path).as_posix() for p in runner_env.models_path.rglob("*"))
    assert left == [".lock", "my-model.gguf", "notes", "notes/todo.txt"]


class OddRunner(BaseHTTPRequestHandler):
    """Answers like the runner on `GET /` and with bodies no command expects everywhere else."""

    def do_GET(self) -> None:
        if self.path == "/":
            self.reply(b"Docker Model Runner is running", "text/plain")
        else:
            self.reply(b'"just a string"', "application/json")

    def do_DELETE(self) -> None:
        self.reply(b'"Deleted"', "application/json")

    def do_POST(self) -> None:
        self.reply(b"<html>hello</html>", "text/html")

    def reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def odd_runner() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OddRunner)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "args", [["rm", "ai/x"], ["list"], ["ps"], ["df"], ["purge", "--force"], ["pull", "ai/x"], ["tag", "a", "b"]]
)
def test_an_unexpected_answer_is_one_line_not_a_traceback(
    installed_plugin: Path, odd_runner: str, args: list[str]
) -> None:
    cli = DockerCLI(installed_plugin, {"MODEL_RUNNER_HOST": odd_runner})
    result = cli.run("model", *args)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
