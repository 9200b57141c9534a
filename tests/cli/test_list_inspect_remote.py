"""`list` and `inspect` additions through the real docker CLI, runner and registry: the CAPABILITIES column
and `--capability`, `list --openaiurl` (any OpenAI-compatible endpoint: the runner's own `/engines/v1`
here), and `inspect --remote` (a model in the registry, never pulled; `GET /models/{name}?remote=true`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests

from tests.cli.test_models import list_row
from tests.distribution.test_capabilities import CHATML, TEMPLATES, THINK
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer, free_port
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration

ALL = "chat, embeddings, tools, vision, reasoning"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("capable")
    template = directory / "tools.jinja"
    template.write_text((TEMPLATES / "hermes_tools.jinja").read_text())
    return {
        "chat": write_gguf(directory / "chat.gguf", seed=1, chat_template=CHATML),
        "bert": write_gguf(directory / "bert.gguf", seed=2, architecture="bert"),
        "think": write_gguf(directory / "think.gguf", seed=3, chat_template=THINK),
        "mmproj": write_gguf(directory / "mmproj.gguf", seed=4, architecture="clip"),
        "tools": template,
    }


@pytest.fixture(scope="module")
def cli(model_cli: DockerCLI, smollm2_gguf: Path, files: dict[str, Path]) -> DockerCLI:
    """SmolLM2 and one model of each kind, packaged into the store with the CLI."""
    for target, options in {
        "ai/smollm2": ["--gguf", str(smollm2_gguf)],
        "ai/embed": ["--gguf", str(files["bert"])],
        "ai/tools": ["--gguf", str(files["chat"]), "--chat-template", str(files["tools"])],
        "ai/thinker": ["--gguf", str(files["think"])],
        "ai/vision": ["--gguf", str(files["chat"]), "--mmproj", str(files["mmproj"])],
    }.items():
        packaged = model_cli.run("model", "package", *options, target)
        assert packaged.returncode == 0, packaged.stderr
    return model_cli


def names(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The MODEL NAME column of a `list` table."""
    return sorted(line.split()[0] for line in result.stdout.splitlines()[1:])


def test_list_shows_what_each_model_can_do(cli: DockerCLI) -> None:
    assert list_row(cli, "smollm2")["CAPABILITIES"] == "chat"
    assert list_row(cli, "embed")["CAPABILITIES"] == "embeddings"
    assert list_row(cli, "tools")["CAPABILITIES"] == "chat, tools"
    assert list_row(cli, "thinker")["CAPABILITIES"] == "chat, reasoning"
    assert list_row(cli, "vision")["CAPABILITIES"] == "chat, vision"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--capability", "tools"], ["tools"]),
        (["--capability", "embeddings"], ["embed"]),
        (["--capability", "chat", "--capability", "vision"], ["vision"]),
        (["--capability", "Chat,Reasoning"], ["thinker"]),
        (["--capability", "chat"], ["smollm2", "thinker", "tools", "vision"]),
        (["--capability", "tools,vision"], []),
    ],
)
def test_list_capability_filters(cli: DockerCLI, options: list[str], expected: list[str]) -> None:
    result = cli.run("model", "list", *options)
    assert result.returncode == 0, result.stderr
    assert names(result) == expected


def test_capability_filters_every_output(cli: DockerCLI) -> None:
    as_json = json.loads(cli.run("model", "list", "--json", "--capability", "tools").stdout)
    assert [(model["tags"], model["capabilities"]) for model in as_json] == [
        (["docker.io/ai/tools:latest"], ["chat", "tools"])
    ]
    quiet = cli.run("model", "list", "-q", "--capability", "embeddings").stdout.split()
    assert quiet == [json.loads(cli.run("model", "inspect", "ai/embed").stdout)["id"][7:19]]
    openai = json.loads(cli.run("model", "list", "--openai", "--capability", "reasoning").stdout)
    assert [(model["id"], model["dmr"]["capabilities"]) for model in openai["data"]] == [
        ("ai/thinker:latest", ["chat", "reasoning"])
    ]
    filtered = json.loads(cli.run("model", "list", "--openai", "thinker").stdout)
    assert [model["id"] for model in filtered["data"]] == ["ai/thinker:latest"]


@pytest.mark.parametrize("value", ["telepathy", "tools,telepathy", ""])
def test_an_unknown_capability_names_the_known_ones(cli: DockerCLI, value: str) -> None:
    result = cli.run("model", "list", "--capability", value)
    assert result.returncode == 2
    assert "--capability" in result.stderr and f"choose from {ALL}" in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_shows_capabilities(cli: DockerCLI) -> None:
    assert json.loads(cli.run("model", "inspect", "ai/tools").stdout)["capabilities"] == ["chat", "tools"]
    openai = json.loads(cli.run("model", "inspect", "--openai", "ai/vision").stdout)
    assert openai["dmr"]["capabilities"] == ["chat", "vision"]
    assert openai["dmr"]["architecture"] == "llama"


def test_list_openaiurl_lists_any_endpoint_without_a_local_runner(
    cli: DockerCLI, installed_plugin: Path, runner_env: RunnerEnv
) -> None:
    """The runner's own `/engines/v1` is the OpenAI-compatible endpoint; MODEL_RUNNER_HOST names a port where
    nothing listens, so the command neither needs nor starts a runner."""
    elsewhere = DockerCLI(installed_plugin, {**runner_env.variables(), "MODEL_RUNNER_HOST": "http://127.0.0.1:1"})
    url = f"{runner_env.base_url}/engines/v1"
    table = elsewhere.run("model", "list", "--openaiurl", url)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["MODEL", "NAME", "CREATED"]
    assert [row.split()[0] for row in rows] == [
        "ai/embed:latest",
        "ai/smollm2:latest",
        "ai/thinker:latest",
        "ai/tools:latest",
        "ai/vision:latest",
    ]
    assert all(row.rstrip().endswith("ago") for row in rows)
    one = json.loads(elsewhere.run("model", "list", "--openaiurl", url, "--json", "ai/smollm2").stdout)
    assert one["object"] == "list" and [model["id"] for model in one["data"]] == ["ai/smollm2:latest"]
    tools = elsewhere.run("model", "list", "--openaiurl", url, "--capability", "tools")
    assert [row.split()[0] for row in tools.stdout.splitlines()[1:]] == ["ai/tools:latest"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--openaiurl", "http://127.0.0.1:{port}/v1"], "cannot reach the OpenAI-compatible endpoint"),
        (["--openaiurl", "ftp://example.com/v1"], "is not an http(s) URL"),
        (["--openaiurl", "http://127.0.0.1:{port}/v1", "-q"], "--quiet cannot be used with --openaiurl"),
    ],
)
def test_list_openaiurl_errors(cli: DockerCLI, options: list[str], message: str) -> None:
    result = cli.run("model", "list", *(option.format(port=free_port()) for option in options))
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_list_openaiurl_that_is_not_an_openai_api(cli: DockerCLI, runner_env: RunnerEnv) -> None:
    result = cli.run("model", "list", "--openaiurl", f"{runner_env.base_url}/nothing-here")
    assert result.returncode == 1
    assert f"{runner_env.base_url}/nothing-here/models answered HTTP 404" in result.stderr


def test_inspect_remote_reads_the_registry_without_pulling(
    cli: DockerCLI, files: dict[str, Path], module_registry: RegistryServer, runner_env: RunnerEnv
) -> None:
    """Models pushed straight from their files (`package --push`): never in the local store."""
    thinker, tools = f"{module_registry.host}/ai/thinker:v1", f"{module_registry.host}/ai/tools:v1"
    for target, options in {
        thinker: ["--gguf", str(files["think"])],
        tools: ["--gguf", str(files["chat"]), "--chat-template", str(files["tools"])],
    }.items():
        pushed = cli.run("model", "package", "--push", *options, target)
        assert pushed.returncode == 0, pushed.stderr
    before = json.loads(cli.run("model", "list", "--json").stdout)

    inspected = cli.run("model", "inspect", "--remote", thinker)
    assert inspected.returncode == 0, inspected.stderr
    model = json.loads(inspected.stdout)
    manifest = requests.get(
        f"{module_registry.url}/v2/ai/thinker/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert model["id"] == manifest.headers["Docker-Content-Digest"]
    assert model["tags"] == []
    assert model["config"]["gguf"]["tokenizer.chat_template"] == THINK
    assert model["capabilities"] == ["chat", "reasoning"]
    # Its template is a layer of its own: read from the registry too.
    assert json.loads(cli.run("model", "inspect", "-r", tools).stdout)["capabilities"] == ["chat", "tools"]

    assert json.loads(cli.run("model", "list", "--json").stdout) == before  # nothing was pulled
    assert not any(module_registry.host in tag for entry in before for tag in entry["tags"])


def test_inspect_remote_of_a_model_the_registry_lacks(
    cli: DockerCLI, module_registry: RegistryServer, runner_env: RunnerEnv
) -> None:
    missing = f"{module_registry.host}/ai/missing:v1"
    result = cli.run("model", "inspect", "--remote", missing)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: model not found: {missing}; its registry has no such model: check the name and the tag"
    )
    answer = requests.get(f"{runner_env.base_url}/models/{missing}?remote=true", timeout=60)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "model_not_found" and f"in registry {module_registry.host}" in error["message"]


def test_inspect_remote_refusals(cli: DockerCLI, runner_env: RunnerEnv) -> None:
    both = cli.run("model", "inspect", "--remote", "--openai", "ai/smollm2")
    assert both.returncode == 2 and "--remote cannot be used with --openai" in both.stderr
    hugging_face = cli.run("model", "inspect", "--remote", "hf.co/org/repo-gguf")
    assert hugging_face.returncode == 1
    assert "a Hugging Face repository becomes a model only when pulled" in hugging_face.stderr
    not_boolean = requests.get(f"{runner_env.base_url}/models/ai/smollm2?remote=maybe", timeout=30)
    assert not_boolean.status_code == 400 and not_boolean.json()["error"]["param"] == "remote"
