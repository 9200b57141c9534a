"""Model management end to end: the real docker CLI, the plugin, a runner it starts, the real registry.

The tests of this module share one runner and one registry and run in order, as a user's session would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest
import requests

from docker_model.runner.shared.cpu import default_threads
from tests.distribution.http_proxy import CountingProxy
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.registry import RegistryServer, htpasswd_auth, start_registry
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration

LIST_HEADERS = (
    *("MODEL NAME", "PARAMETERS", "QUANTIZATION", "ARCHITECTURE", "MODEL ID", "CREATED", "CONTEXT", "SIZE"),
    "CAPABILITIES",  # this plugin's, after Docker Model Runner's columns
)


@pytest.fixture(scope="module")
def remote_name(module_registry: RegistryServer) -> str:
    return f"{module_registry.host}/ai/smollm2:q4"


def list_row(cli: DockerCLI, name: str) -> dict[str, str]:
    """The `list` row of one model, as a dict from column header to value."""
    result = cli.run("model", "list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    starts = [header.index(column) for column in header.split("   ") if column.strip()]
    columns = [header[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
    for row in rows:
        cells = [row[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        if cells[0] == name:
            return dict(zip(columns, cells, strict=True))
    raise AssertionError(f"{name} not in the list:\n{result.stdout}")


def test_status_before_the_runner_runs(model_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    result = model_cli.run("model", "status")
    assert (result.returncode, result.stdout.strip()) == (1, "Docker Model Runner is not running")
    assert not runner_env.is_up()


def test_the_first_command_that_needs_the_runner_starts_it(model_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    result = model_cli.run("model", "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "   ".join(LIST_HEADERS)
    assert runner_env.is_up()
    status = model_cli.run("model", "status")
    assert status.returncode == 0
    assert status.stdout.startswith("Docker Model Runner is running")
    assert "llama.cpp" in status.stdout and "CPU" in status.stdout
    assert f"{default_threads()} CPU threads (one per physical core, fewer while other programs" in status.stdout


def test_status_json(model_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    status = json.loads(model_cli.run("model", "status", "--json").stdout)
    assert status["running"] is True
    assert status["endpointHost"] == f"{runner_env.base_url}/engines/v1/"
    assert status["endpoint"] == ""  # on loopback only, no container can reach it: never a loopback URL
    assert status["backends"]["llama.cpp"].startswith("Running: ")


def test_package_and_push(model_cli: DockerCLI, smollm2_gguf: Path, remote_name: str) -> None:
    result = model_cli.run("model", "package", "--gguf", str(smollm2_gguf), "--push", remote_name)
    assert result.returncode == 0, result.stderr
    assert "pushed successfully" in result.stdout


def test_pull_shows_the_true_model_facts(model_cli: DockerCLI, remote_name: str) -> None:
    result = model_cli.run("model", "pull", remote_name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "Model pulled successfully"
    assert "Downloaded" in result.stdout
    row = list_row(model_cli, remote_name)
    assert row["PARAMETERS"].startswith("134.")  # SmolLM2-135M has 134.5M parameters
    # CONTEXT is what the model runs with: not packaged with one, so 4096 (capped at the trained 8192).
    assert (row["QUANTIZATION"], row["ARCHITECTURE"], row["CONTEXT"]) == ("Q4_1", "llama", "4096")
    assert row["SIZE"].endswith("MiB")
    assert len(row["MODEL ID"]) == 12


def test_rm_then_pull_again(model_cli: DockerCLI, remote_name: str) -> None:
    removed = model_cli.run("model", "rm", remote_name)
    assert removed.returncode == 0, removed.stderr
    untagged, deleted = removed.stdout.strip().splitlines()
    assert untagged == f"Untagged: {remote_name}"
    assert deleted.startswith("Deleted: sha256:")
    assert remote_name not in model_cli.run("model", "list").stdout
    pulled = model_cli.run("model", "pull", remote_name)
    assert pulled.returncode == 0, pulled.stderr
    assert "Downloaded" in pulled.stdout
    assert list_row(model_cli, remote_name)["QUANTIZATION"] == "Q4_1"


def test_pulling_a_present_model_downloads_nothing(model_cli: DockerCLI, remote_name: str) -> None:
    again = model_cli.run("model", "pull", remote_name)
    assert again.returncode == 0, again.stderr
    assert "Downloaded" not in again.stdout
    assert again.stdout.strip().splitlines()[-1] == "Model pulled successfully"


def test_package_lands_in_the_store_and_is_listed(model_cli: DockerCLI, smollm2_gguf: Path) -> None:
    result = model_cli.run("model", "package", "--gguf", str(smollm2_gguf), "--context-size", "2048", "smollm2-local")
    assert result.returncode == 0, result.stderr
    row = list_row(model_cli, "smollm2-local")
    assert (row["ARCHITECTURE"], row["QUANTIZATION"], row["CONTEXT"]) == ("llama", "Q4_1", "2048")


def test_inspect_shows_the_config(model_cli: DockerCLI, remote_name: str) -> None:
    result = model_cli.run("model", "inspect", remote_name)
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert model["id"].startswith("sha256:")
    assert model["config"]["format"] == "gguf"
    assert model["config"]["gguf"]["general.architecture"] == "llama"
    openai = json.loads(model_cli.run("model", "inspect", "--openai", remote_name).stdout)
    assert (openai["object"], openai["owned_by"]) == ("model", "docker")


def test_tag_and_push_to_another_repository(
    model_cli: DockerCLI, module_registry: RegistryServer, remote_name: str
) -> None:
    target = f"{module_registry.host}/team/smollm2:v2"
    assert model_cli.run("model", "tag", remote_name, target).returncode == 0
    pushed = model_cli.run("model", "push", target)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip().splitlines()[-1] == "Model pushed successfully"
    tags = requests.get(f"{module_registry.url}/v2/team/smollm2/tags/list", timeout=10).json()
    assert tags["tags"] == ["v2"]
    assert model_cli.run("model", "rm", target).stdout.strip() == f"Untagged: {target}"


def test_tag_then_rm_by_id_needs_force(model_cli: DockerCLI, remote_name: str) -> None:
    tagged = model_cli.run("model", "tag", remote_name, "ai/smollm2-copy:v1")
    assert tagged.returncode == 0, tagged.stderr
    model_id = list_row(model_cli, "smollm2-copy:v1")["MODEL ID"]
    assert list_row(model_cli, remote_name)["MODEL ID"] == model_id

    refused = model_cli.run("model", "rm", model_id)
    assert refused.returncode == 1
    assert "force" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    untag = model_cli.run("model", "rm", "smollm2-copy:v1")
    assert untag.stdout.strip() == "Untagged: ai/smollm2-copy:v1"

    model_cli.run("model", "tag", remote_name, "ai/smollm2-copy:v2")
    forced = model_cli.run("model", "rm", "-f", model_id)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.count("Untagged:") == 2
    assert "Deleted: sha256:" in forced.stdout


def test_df_counts_the_bytes(model_cli: DockerCLI, smollm2_gguf: Path) -> None:
    result = model_cli.run("model", "df")
    assert result.returncode == 0, result.stderr
    rows = dict(line.rsplit(None, 1) for line in result.stdout.splitlines()[1:])
    models = rows["Models"]
    assert models.endswith("MB")
    # only smollm2-local is left: its GGUF plus a small config
    assert float(models.removesuffix("MB")) == pytest.approx(smollm2_gguf.stat().st_size / 1e6, abs=0.1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "ai/never-pulled"], "model not found: ai/never-pulled"),
        (["rm", "ai/never-pulled"], "model not found: ai/never-pulled"),
        (["push", "ai/never-pulled"], "model not found: ai/never-pulled; push sends a model you have"),
        (["tag", "ai/never-pulled", "ai/other"], "model not found: ai/never-pulled; 'docker model list'"),
        (["pull", "Bad Name!"], "invalid model reference"),
        (["pull", ""], "invalid model reference '': it is empty"),
        (["pull", "127.0.0.1:1/ai/nowhere"], "cannot reach registry 127.0.0.1:1"),
    ],
)
def test_errors_are_one_line_with_a_non_zero_exit(model_cli: DockerCLI, args: list[str], message: str) -> None:
    result = model_cli.run("model", *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_refused_credentials(model_cli: DockerCLI, tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("auth-registry")
    server = start_registry(workdir, auth=htpasswd_auth(workdir))
    try:
        result = model_cli.run("model", "pull", f"{server.host}/ai/private:v1")
    finally:
        server.stop()
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "authentication" in lines[0].lower(), result.stderr


def test_pull_on_a_terminal_draws_bars_and_ctrl_c_leaves_a_resumable_download(
    model_cli: DockerCLI, module_registry: RegistryServer, runner_env: RunnerEnv, smollm2_gguf: Path
) -> None:
    """Through a slowed-down proxy (which forwards the real registry's answers), Ctrl-C stops a pull
    partway; the next pull fetches only the rest."""
    for model_id in dict.fromkeys(model_cli.run("model", "list", "-q").stdout.split()):
        assert model_cli.run("model", "rm", "-f", model_id).returncode == 0
    proxy = CountingProxy(module_registry.url)
    proxy.seconds_per_mib = 0.05  # about 5 s for SmolLM2's 98 MB
    name = f"{proxy.host}/ai/smollm2:q4"
    try:
        session = pexpect.spawn(
            "docker", ["model", "pull", name], env=model_cli.environment(), encoding="utf-8", timeout=60
        )
        session.expect("━")  # rich draws a progress bar on a terminal
        session.expect(r"\d+\.\d MB")  # and some megabytes have arrived
        session.sendintr()
        session.expect_exact("Pull interrupted; run the same command again to resume the download.")
        session.expect(pexpect.EOF)
        session.close()
        assert session.exitstatus == 130
        partial = list((runner_env.models_path / "blobs" / "sha256").glob("*.incomplete"))
        assert len(partial) == 1
        kept = partial[0].stat().st_size
        assert 0 < kept < smollm2_gguf.stat().st_size
        fetched_first = proxy.total_blob_bytes()

        proxy.seconds_per_mib = 0.0
        resumed = model_cli.run("model", "pull", name)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.strip().splitlines()[-1] == "Model pulled successfully"
        missing = smollm2_gguf.stat().st_size - kept
        fetched_second = proxy.total_blob_bytes() - fetched_first
        assert missing <= fetched_second <= missing + 64 * 1024  # the rest of the GGUF, plus the small config
    finally:
        proxy.close()


def test_run_pulls_a_missing_model_then_answers(model_cli: DockerCLI, remote_name: str) -> None:
    assert remote_name not in model_cli.run("model", "list").stdout  # the test above removed every model
    result = model_cli.run("model", "run", remote_name, "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    assert f"Unable to find model '{remote_name}' locally. Pulling from the server." in result.stderr
    assert "Model pulled successfully" in result.stderr  # stdout holds the answer alone: `run M "q" > answer`
    assert "pulled" not in result.stdout and "Downloaded" not in result.stdout
    assert result.stdout.strip()  # the answer (sampled at the default temperature)
