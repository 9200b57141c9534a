"""The runner beyond loopback, called from another machine: a network namespace joined to this one by a veth
pair (through a Linux bridge, as Docker's containers are), with the official OpenAI client and curl. And
the runner over TLS, with its own certificate."""

from __future__ import annotations

import json
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.netns import OtherMachine, other_machine
from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env
from tests.runner.conftest import MODEL, load_model

pytestmark = pytest.mark.integration

CHAT = """
import os, openai
client = openai.OpenAI(base_url=os.environ["URL"], api_key=os.environ.get("KEY", "any string"), max_retries=0)
try:
    answer = client.chat.completions.create(
        model=os.environ["MODEL"], messages=[{"role": "user", "content": "Say hi"}], max_tokens=8, temperature=0
    )
    print("answered", answer.choices[0].message.content)
except openai.AuthenticationError as error:
    print("refused", error.status_code)
"""


def chat_from(machine: OtherMachine, url: str, model: str = MODEL, key: str | None = None) -> str:
    """What the OpenAI client on `machine` got: `answered ...` or `refused 401`."""
    result = machine.python(CHAT, {"URL": url, "MODEL": model, **({"KEY": key} if key else {})})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def status_from(machine: OtherMachine, url: str, token: str | None = None) -> int:
    """The HTTP status curl on `machine` gets for a GET of `url`."""
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    result = machine.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *auth, url])
    return int(result.stdout)


def token_of(env: RunnerEnv) -> str:
    token_file = env.state_dir / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    return token_file.read_text().strip()


@pytest.fixture(scope="module")
def bridge() -> Iterator[OtherMachine]:
    with other_machine(bridge=True) as machine:
        yield machine


@pytest.fixture(scope="module")
def bridged(bridge: OtherMachine, tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[RunnerEnv]:
    """A runner on loopback and on the bridge containers use (named as Docker's docker0 would be)."""
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_BRIDGE=str(bridge.bridge))
    with direct_runner(env, "--host", bridge.host_address):
        load_model(env.base_url, smollm2_gguf, MODEL)
        yield env


def test_containers_on_the_bridge_use_models_without_the_token_and_manage_nothing(
    bridge: OtherMachine, bridged: RunnerEnv
) -> None:
    url = f"http://{bridge.host_address}:{bridged.port}"
    assert chat_from(bridge, f"{url}/engines/v1").startswith("answered")  # any string as the API key
    assert status_from(bridge, f"{url}/engines/v1/models") == 200
    for management in ("/models", "/engines/ps", "/metrics", "/version"):
        assert status_from(bridge, url + management) == 401, management
        assert status_from(bridge, url + management, token_of(bridged)) == 200, management
    assert status_from(bridge, f"{url}/") == 200  # the health check reveals nothing and needs nothing


def test_status_names_the_address_containers_use_and_the_token(
    bridge: OtherMachine, bridged: RunnerEnv, installed_plugin: Path
) -> None:
    cli = DockerCLI(installed_plugin, bridged.variables())
    status = json.loads(cli.run("model", "status", "--json").stdout)
    assert status["endpoint"] == f"http://{bridge.host_address}:{bridged.port}/engines/v1/"
    assert status["endpointHost"] == f"{bridged.base_url}/engines/v1/"
    text = cli.run("model", "status").stdout
    assert f"Containers:  http://{bridge.host_address}:{bridged.port}/engines/v1/" in text
    assert f"Token:       {token_of(bridged)}" in text


def test_any_other_address_needs_the_token_for_everything(
    tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path, installed_plugin: Path
) -> None:
    with other_machine() as machine:
        env = make_runner_env(tmp_path_factory)
        with direct_runner(env, "--host", machine.host_address):
            load_model(env.base_url, smollm2_gguf, MODEL)  # from loopback: no token needed there
            url = f"http://{machine.host_address}:{env.port}"
            assert chat_from(machine, f"{url}/v1") == "refused 401"
            assert chat_from(machine, f"{url}/v1", key="wrong") == "refused 401"
            assert chat_from(machine, f"{url}/v1", key=token_of(env)).startswith("answered")
            assert status_from(machine, f"{url}/") == 200
            # The CLI on that machine gets there with MODEL_RUNNER_TOKEN.
            plugin = str(installed_plugin / "cli-plugins" / "docker-model")
            cli_env = {"MODEL_RUNNER_HOST": url, "MODEL_RUNNER_TOKEN": token_of(env)}
            listed = machine.run([plugin, "ls", "-q"], cli_env)
            assert listed.returncode == 0, listed.stderr
            assert len(listed.stdout.split()) == 1
            refused = machine.run([plugin, "ls"], {**cli_env, "MODEL_RUNNER_TOKEN": "wrong"})
            assert refused.returncode == 1 and "needs its token" in refused.stderr


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_serves_streams_and_the_cli(
    certificate: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path, installed_plugin: Path
) -> None:
    cert, key = certificate
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_TLS_CERT=str(cert), DOCKER_MODEL_TLS_KEY=str(key))
    with direct_runner(env):
        assert env.base_url.startswith("https://")
        load_model(env.base_url, smollm2_gguf, MODEL, verify=str(cert))
        with httpx.Client(verify=ssl.create_default_context(cafile=cert)) as http:
            client = openai.OpenAI(base_url=f"{env.base_url}/v1", api_key="local", http_client=http, max_retries=0)
            pieces = [
                chunk.choices[0].delta.content or ""
                for chunk in client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "Count to five"}], max_tokens=12, stream=True
                )
                if chunk.choices
            ]
            assert len(pieces) > 3 and "".join(pieces).strip()
            whole = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=4
            )
            assert whole.usage is not None and whole.usage.completion_tokens > 0
        with pytest.raises(httpx.ConnectError):  # an unverified certificate is refused by a careful client
            httpx.get(f"{env.base_url}/", verify=True)
        cli = DockerCLI(installed_plugin, {k: v for k, v in env.variables().items() if k != "MODEL_RUNNER_HOST"})
        answer = cli.run("model", "run", MODEL, "Say hi")
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip()
