"""`docker model context` through the real docker CLI, with two real runners: one on this machine's loopback,
and one on an address of another network (a namespace's link, as another machine's runner would be), which
wants its token there. Tiny GGUF models: no inference here."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.netns import other_machine
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env
from tests.runner.conftest import load_model

pytestmark = pytest.mark.integration

LOCAL_MODEL, REMOTE_MODEL = "ai/here-only", "ai/there-only"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerEnv]:
    env = make_runner_env(tmp_path_factory)
    with direct_runner(env):
        load_model(env.base_url, write_gguf(env.state_dir.parent / "here.gguf", seed=1), LOCAL_MODEL)
        yield env


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunnerEnv, str]]:
    """A runner also listening on a non-loopback address, and its URL there (the token is needed for all)."""
    with other_machine() as machine:
        env = make_runner_env(tmp_path_factory)
        with direct_runner(env, "--host", machine.host_address):
            load_model(env.base_url, write_gguf(env.state_dir.parent / "there.gguf", seed=2), REMOTE_MODEL)
            yield env, f"http://{machine.host_address}:{env.port}"


def token_of(env: RunnerEnv) -> str:
    return (env.state_dir / "token").read_text().strip()


@pytest.fixture
def cli(installed_plugin: Path, local: RunnerEnv, tmp_path: Path) -> DockerCLI:
    """The docker CLI with a DOCKER_CONFIG of its own (the contexts file lives there) and the plugin in it, set
    up for the local runner the way a user's shell is: no MODEL_RUNNER_HOST."""
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "cli-plugins").symlink_to(installed_plugin / "cli-plugins")
    settings = {k: v for k, v in local.variables().items() if k != "MODEL_RUNNER_HOST"}
    return DockerCLI(config, settings)


def names(cli: DockerCLI, **env: str) -> list[str]:
    listed = DockerCLI(cli.docker_config, {**cli.env, **env}).run("model", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return sorted(tag for model in json.loads(listed.stdout) for tag in model["tags"])


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def test_a_context_drives_the_other_runner_with_its_token(
    cli: DockerCLI, local: RunnerEnv, remote: tuple[RunnerEnv, str]
) -> None:
    remote_env, url = remote
    assert names(cli) == [f"docker.io/{LOCAL_MODEL}:latest"]
    created = cli.run(
        "model", "context", "create", "gpu-box", "--host", url, "--token", "-", "--description", "the other one",
        input=token_of(remote_env) + "\n",
    )  # fmt: skip
    assert (created.returncode, created.stdout) == (0, 'Context "gpu-box" created.\n'), created.stderr
    contexts_file, tokens_file = (
        cli.docker_config / "model" / name for name in ("contexts.json", "context-tokens.json")
    )
    assert "token" not in json.loads(contexts_file.read_text())["contexts"]["gpu-box"]  # Docker Model Runner's file
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
    assert json.loads(tokens_file.read_text())["tokens"]["gpu-box"] == {"host": url, "token": token_of(remote_env)}
    assert created.stderr.startswith("Warning: context 'gpu-box' sends its token in clear to ")  # plain HTTP
    assert names(cli) == [f"docker.io/{LOCAL_MODEL}:latest"]  # created, not yet in use

    used = cli.run("model", "context", "use", "gpu-box")
    assert (used.returncode, used.stdout) == (0, 'Current context is now "gpu-box".\n')
    assert names(cli) == [f"docker.io/{REMOTE_MODEL}:latest"]
    listing = cli.run("model", "context", "ls").stdout.splitlines()
    assert listing[0].split() == ["NAME", "HOST", "DESCRIPTION", "CURRENT"]
    assert listing[1].split() == ["default", local.base_url, "The", "runner", "on", "this", "machine"]
    assert listing[2].split() == ["gpu-box", url, "the", "other", "one", "*"]
    inspected = json.loads(cli.run("model", "context", "inspect", "gpu-box").stdout)
    assert inspected[0]["token"] == "(hidden)" and inspected[0]["host"] == url

    # MODEL_RUNNER_HOST still wins over the current context, and `context ls` says so.
    assert names(cli, MODEL_RUNNER_HOST=local.base_url) == [f"docker.io/{LOCAL_MODEL}:latest"]
    warned = DockerCLI(cli.docker_config, {**cli.env, "MODEL_RUNNER_HOST": local.base_url}).run(
        "model", "context", "ls"
    )
    assert warned.stderr.strip() == f'Warning: MODEL_RUNNER_HOST="{local.base_url}" overrides the current context.'

    # The current context cannot be removed; `use default` goes back to this machine's runner.
    refused = one_line_error(cli.run("model", "context", "rm", "gpu-box"))
    assert "'gpu-box' is the current context: `docker model context use default` first" in refused
    assert cli.run("model", "context", "use", "default").returncode == 0
    assert names(cli) == [f"docker.io/{LOCAL_MODEL}:latest"]
    removed = cli.run("model", "context", "rm", "gpu-box")
    assert (removed.returncode, removed.stdout) == (0, 'Context "gpu-box" removed.\n')
    assert json.loads(contexts_file.read_text())["contexts"] == {}
    assert not tokens_file.exists()


def test_without_its_token_the_other_runner_refuses(cli: DockerCLI, remote: tuple[RunnerEnv, str]) -> None:
    _, url = remote
    assert cli.run("model", "context", "create", "tokenless", "--host", url).returncode == 0
    assert cli.run("model", "context", "use", "tokenless").returncode == 0
    assert "needs its token" in one_line_error(cli.run("model", "list"))


def test_a_context_whose_runner_is_down_starts_nothing(cli: DockerCLI, local: RunnerEnv) -> None:
    """A context names a runner someone else runs: even on a loopback port, the CLI does not start one there."""
    port = free_port()
    assert cli.run("model", "context", "create", "tunnel", "--host", f"127.0.0.1:{port}").returncode == 0
    assert cli.run("model", "context", "use", "tunnel").returncode == 0
    line = one_line_error(cli.run("model", "list"))
    assert line == (
        f"Error: Docker Model Runner is not running at http://127.0.0.1:{port}; start it there, "
        "or leave context 'tunnel': `docker model context use default`"
    )
    assert not (local.state_dir / f"runner-{port}.pid").exists()


@pytest.fixture(scope="module")
def tls_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerEnv]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_TLS_CERT=str(cert), DOCKER_MODEL_TLS_KEY=str(key))
    with direct_runner(env):
        load_model(env.base_url, write_gguf(folder / "secure.gguf", seed=3), "ai/secure", verify=str(cert))
        yield env


def test_a_context_trusts_its_tls_ca(cli: DockerCLI, tls_runner: RunnerEnv) -> None:
    cert = str(tls_runner.certificate)
    plain_url = f"127.0.0.1:{tls_runner.port}"
    created = cli.run("model", "context", "create", "secure", "--host", plain_url, "--tls", "--tls-ca-cert", cert)
    assert created.returncode == 0, created.stderr
    assert cli.run("model", "context", "use", "secure").returncode == 0
    assert names(cli) == ["docker.io/ai/secure:latest"]
    shown = json.loads(cli.run("model", "context", "inspect", "secure").stdout)[0]
    assert (shown["host"], shown["tls"]) == (f"https://{plain_url}", {"enabled": True, "caCert": cert})


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["create", "default", "--host", "http://x:1"], "the context name 'default' is reserved"),
        (["create", "bad name", "--host", "http://x:1"], "invalid context name 'bad name'"),
        (["create", "x", "--host", "ftp://x"], "'ftp://x' is not a URL"),
        (["create", "x", "--host", "http://x:1", "--tls-skip-verify"], "--tls-skip-verify needs TLS"),
        (["create", "x", "--host", "https://x:1", "--tls-ca-cert", "/etc/hostname"], "cannot use /etc/hostname"),
        (["use", "nowhere"], "context 'nowhere' not found"),
        (["inspect", "nowhere"], "context 'nowhere' not found"),
        (["rm", "default"], "'default' is the runner on this machine and cannot be removed"),
    ],
)
def test_bad_context_commands_are_one_line(cli: DockerCLI, args: list[str], problem: str) -> None:
    result = cli.run("model", "context", *args)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
    assert problem in result.stderr


def test_a_broken_contexts_file_is_named(cli: DockerCLI) -> None:
    folder = cli.docker_config / "model"
    folder.mkdir()
    (folder / "contexts.json").write_text("{not json")
    line = one_line_error(cli.run("model", "list"))
    assert line.startswith(f"Error: cannot use the contexts file {folder / 'contexts.json'}: ")
    assert line.endswith("; fix or remove it")
