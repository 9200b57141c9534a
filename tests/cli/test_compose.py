"""Docker Compose's use of the plugin, played as Compose plays it (docker/compose v5.5.0: the provider
protocol of `pkg/compose/plugins.go`, the top-level `models:` of `pkg/compose/model.go`). No Docker engine
runs here, so this test is Compose's side: it runs the plugin binary with Compose's exact command lines,
parses the output as Compose's Go code does, and then plays the container that gets the variables: a
network namespace behind a Linux bridge (as docker0 is), calling the model with the official OpenAI client.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.netns import OtherMachine, other_machine
from tests.fixtures.registry import RegistryServer
from tests.fixtures.runner import RunnerEnv, make_runner_env

pytestmark = pytest.mark.integration

PROJECT = "shop"
SERVICE = "llm"
COMPOSE_MESSAGE_TYPES = ("info", "error", "setenv", "rawsetenv", "debug")
CHAT = """
import os, openai
client = openai.OpenAI(base_url=os.environ["URL"], api_key="anything", max_retries=0)
answer = client.chat.completions.create(
    model=os.environ["MODEL"], messages=[{"role": "user", "content": "Say hi"}], max_tokens=8, temperature=0
)
print(answer.choices[0].message.content)
"""


class Compose:
    """What Compose does with the plugin binary, step by step."""

    def __init__(self, plugin: Path, env: dict[str, str]) -> None:
        self.plugin = plugin
        self.env = {**os.environ, **env}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.plugin), *args], capture_output=True, text=True, env=self.env, timeout=600)

    def combined_output(self, *args: str) -> str:
        """Go's CombinedOutput: stdout and stderr together, as Compose reads `ls` and `status`."""
        result = subprocess.run(
            [str(self.plugin), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env
        )
        assert result.returncode == 0, result.stdout
        return result.stdout

    def provider(self, command: str, options: dict[str, list[str]], service: str) -> tuple[dict[str, str], list[dict]]:
        """runPlugin: metadata first, then `compose --project-name=P COMMAND --k=v... SERVICE`; the variables
        the services depending on `service` get, and every message."""
        metadata = json.loads(self.run("compose", "metadata").stdout)
        parameters = {parameter["name"] for parameter in (metadata.get(command) or {}).get("parameters") or []}
        required = [p["name"] for p in (metadata.get(command) or {}).get("parameters") or [] if p["required"]]
        assert all(name in options for name in required), f"Compose refuses: {required} missing"
        args = ["compose", f"--project-name={PROJECT}", command]
        args += [f"--{key}={value}" for key, values in options.items() if key in parameters for value in values]
        result = self.run(*args, service)
        variables, messages = {}, []
        for line in result.stdout.splitlines():
            message = json.loads(line)  # anything else on stdout: "invalid response from plugin"
            assert message["type"] in COMPOSE_MESSAGE_TYPES, line
            messages.append(message)
            if message["type"] == "error":
                return variables, messages
            if message["type"] == "setenv":
                key, _, value = message["message"].partition("=")
                variables[f"{service.upper()}_{key}"] = value
        assert result.returncode == 0, result.stderr
        return variables, messages

    def supports_runtime_flags(self) -> bool:
        """Compose's gate: the plugin metadata's Version, at least 1.0.6, compared as Docker compares versions."""
        version = json.loads(self.run("docker-cli-plugin-metadata").stdout)["Version"].removeprefix("v")

        def numbers(text: str) -> list[int]:
            return [int(part) if part.isdigit() else 0 for part in text.split(".")]

        have, need = numbers(version), numbers("1.0.6")
        for index in range(max(len(have), len(need))):
            mine, theirs = (have + [0] * 9)[index], (need + [0] * 9)[index]
            if mine != theirs:
                return mine > theirs
        return True

    def ensure_models(self, name: str, model: str, context_size: int, runtime_flags: list[str]) -> dict[str, str]:
        """ensureModels for one entry of `models:`; the variables a service listing it gets."""
        listed = json.loads(self.combined_output("ls", "--json")) or []
        tags = [tag for entry in listed for tag in entry.get("tags") or []]
        if model not in tags:
            pulled = self.run("pull", model)
            assert pulled.returncode == 0, pulled.stderr
        args = ["configure"] + (["--context-size", str(context_size)] if context_size > 0 else []) + [model]
        if runtime_flags and self.supports_runtime_flags():
            args += ["--", *runtime_flags]
        configured = self.run(*args)
        assert configured.returncode == 0, configured.stderr
        status = json.loads(self.combined_output("status", "--json"))
        prefix = name.upper().replace("-", "_")
        return {f"{prefix}_URL": status["endpoint"], f"{prefix}_MODEL": model}


@pytest.fixture(scope="module")
def bridge() -> Iterator[OtherMachine]:
    with other_machine(bridge=True) as machine:
        yield machine


@pytest.fixture(scope="module")
def remote_model(installed_plugin: Path, module_registry: RegistryServer, smollm2_gguf: Path) -> str:
    name = f"{module_registry.host}/ai/smollm2"
    pushed = DockerCLI(installed_plugin).run("model", "package", "--gguf", str(smollm2_gguf), "--push", name)
    assert pushed.returncode == 0, pushed.stderr
    return name


@pytest.fixture(scope="module")
def compose_env(tmp_path_factory: pytest.TempPathFactory, bridge: OtherMachine) -> Iterator[RunnerEnv]:
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_BRIDGE=str(bridge.bridge))
    yield env
    env.stop()


@pytest.fixture(scope="module")
def compose(installed_plugin: Path, compose_env: RunnerEnv) -> Compose:
    return Compose(installed_plugin / "cli-plugins" / "docker-model", compose_env.variables())


def configured_flags(compose: Compose, model: str) -> tuple[str, str]:
    """(context size, runtime flags) in `configure show`."""
    row = compose.run("configure", "show", model).stdout.splitlines()[1]
    columns = [column.strip() for column in row.split("  ") if column.strip()]
    return columns[1], columns[5]


def test_a_provider_service_gets_a_url_and_model_its_containers_can_use(
    compose: Compose, compose_env: RunnerEnv, bridge: OtherMachine, remote_model: str
) -> None:
    """services: {llm: {provider: {type: model, options: {model, context-size, runtime-flags}}},
    app: {depends_on: [llm]}}"""
    options = {"model": [remote_model], "context-size": ["2048"], "runtime-flags": ["--temp 0.1 --top-k 20"]}
    variables, messages = compose.provider("up", options, SERVICE)
    infos = [message["message"] for message in messages if message["type"] == "info"]
    assert not [message for message in messages if message["type"] == "error"], messages
    assert variables == {
        "LLM_URL": f"http://{bridge.host_address}:{compose_env.port}/engines/v1/",
        "LLM_MODEL": remote_model,
    }
    assert any(info.startswith("Pulling") for info in infos)
    assert (
        f"Opened the runner to containers at http://{bridge.host_address}:{compose_env.port} (the Docker bridge)"
        in (infos)
    )
    assert configured_flags(compose, remote_model) == ("2048", "--temp 0.1 --top-k 20")
    app = bridge.python(CHAT, {"URL": variables["LLM_URL"], "MODEL": variables["LLM_MODEL"]})
    assert app.returncode == 0 and app.stdout.strip(), app.stderr
    assert compose.provider("down", options, SERVICE) == ({}, [])


def test_the_models_element_gets_a_url_and_model_its_containers_can_use(
    compose: Compose, bridge: OtherMachine, remote_model: str, installed_plugin: Path, compose_env: RunnerEnv
) -> None:
    """models: {llm: {model, context_size: 3072, runtime_flags: [--temp, "0.3"]}}, services: {app: {models: [llm]}}:
    the runner was opened to containers first, as the README says (`start-runner --host`)."""
    started = compose.run("start-runner", "--host", bridge.host_address)
    assert started.returncode == 0, started.stderr
    assert compose.supports_runtime_flags()
    variables = compose.ensure_models(SERVICE, remote_model, 3072, ["--temp", "0.3"])
    assert variables == {
        "LLM_URL": f"http://{bridge.host_address}:{compose_env.port}/engines/v1/",
        "LLM_MODEL": remote_model,
    }
    assert configured_flags(compose, remote_model) == ("3072", "--temp 0.3")
    app = bridge.python(CHAT, {"URL": variables["LLM_URL"], "MODEL": variables["LLM_MODEL"]})
    assert app.returncode == 0 and app.stdout.strip(), app.stderr


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"model": ["ai/smollm2"], "backend": ["vllm"]}, "backend 'vllm' is not available"),
        ({"model": ["ai/smollm2"], "speculative-draft-model": ["ai/tiny"]}, "speculative decoding"),
        ({"model": ["ai/smollm2"], "context-size": ["0"]}, "context-size must be a positive number"),
        ({"model": ["Not A Model!"]}, "Not A Model!"),
    ],
)
def test_options_the_runner_cannot_honour_stop_compose_with_a_reason(
    compose: Compose, options: dict[str, list[str]], error: str
) -> None:
    variables, messages = compose.provider("up", options, SERVICE)
    assert variables == {}
    assert messages[-1]["type"] == "error" and error in messages[-1]["message"], messages


def test_compose_up_says_why_containers_cannot_reach_the_runner(
    installed_plugin: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_BRIDGE="none")
    try:
        compose = Compose(installed_plugin / "cli-plugins" / "docker-model", env.variables())
        result = compose.run("compose", f"--project-name={PROJECT}", "up", "--model=ai/smollm2", SERVICE)
        last = json.loads(result.stdout.splitlines()[-1])
        assert result.returncode == 1
        assert last == {
            "type": "error",
            "message": "containers cannot reach the runner: DOCKER_MODEL_BRIDGE=none forbids opening the runner "
            "to containers",
        }
    finally:
        env.stop()


def test_the_readme_compose_file_uses_only_what_compose_and_the_plugin_know(compose: Compose) -> None:
    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Use it from containers and Compose") :]
    text = section[section.index("```yaml") + len("```yaml") : section.index("```", section.index("```yaml") + 7)]
    project = yaml.safe_load(text)
    parameters = {p["name"] for p in json.loads(compose.run("compose", "metadata").stdout)["up"]["parameters"]}
    providers = [service for service in project["services"].values() if "provider" in service]
    assert providers and all(service["provider"]["type"] == "model" for service in providers)
    for service in providers:
        assert set(service["provider"]["options"]) <= parameters
    for model in project["models"].values():  # compose-go's ModelConfig fields
        assert set(model) <= {"name", "model", "context_size", "runtime_flags"}
    for service in project["services"].values():
        for ref in service.get("models", []):
            assert ref in project["models"]
        for dependency in service.get("depends_on", []):
            assert dependency in project["services"]
