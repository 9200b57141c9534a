"""`docker model save` and `load` through the real docker CLI: a model saved on one runner loads into the
empty store of another that can reach no registry, and runs there; hostile archives are refused with one
line and change nothing; a model named `export` stays reachable beside the export route."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from docker_model.distribution import Store, package
from tests.distribution.test_oci_layout import contents, hostile, members, saved
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv, make_runner_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unreachable_name() -> str:
    """A name on a registry nobody answers: a `run` that tried to pull it would fail."""
    return f"localhost:{free_port()}/ai/saved:v1"


@pytest.fixture(scope="module")
def second(installed_plugin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DockerCLI, RunnerEnv]]:
    """Another machine's runner, as far as the store goes: its own empty store, its own port."""
    env = make_runner_env(tmp_path_factory)
    yield DockerCLI(installed_plugin, env.variables()), env
    env.stop()


@pytest.fixture(scope="module")
def archive(
    model_cli: DockerCLI, smollm2_gguf: Path, unreachable_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    packaged = model_cli.run("model", "package", "--gguf", str(smollm2_gguf), unreachable_name)
    assert packaged.returncode == 0, packaged.stderr
    output = tmp_path_factory.mktemp("saved") / "smollm2.tar"
    result = model_cli.run("model", "save", unreachable_name, "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Model {unreachable_name} saved to {output} (")
    return output


def test_save_writes_an_oci_image_layout_naming_the_model(archive: Path, unreachable_name: str) -> None:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert names[:2] == ["oci-layout", "index.json"] and names[-1] == "manifest.json"
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == unreachable_name
    assert not [p for p in archive.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_saved_model_loads_into_an_empty_store_and_runs_with_no_registry(
    archive: Path, second: tuple[DockerCLI, RunnerEnv], unreachable_name: str
) -> None:
    cli, _ = second
    assert cli.run("model", "list", "-q").stdout.strip() == ""
    loaded = cli.run("model", "load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == f"Loaded model: {unreachable_name}"
    assert unreachable_name in cli.run("model", "list").stdout

    configured = cli.run("model", "configure", unreachable_name, "--", "--temp", "0")
    assert configured.returncode == 0, configured.stderr
    ran = cli.run("model", "run", unreachable_name, "What is the capital of France? Answer in one word.")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() and "Unable to find model" not in ran.stderr
    checked = cli.run("model", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1] == "No problems found"


def test_a_model_named_export_is_reachable_beside_the_export_route(
    model_cli: DockerCLI, runner_env: RunnerEnv, tmp_path: Path
) -> None:
    packaged = model_cli.run("model", "package", "--gguf", str(write_gguf(tmp_path / "e.gguf", seed=7)), "export")
    assert packaged.returncode == 0, packaged.stderr
    model_id = json.loads(model_cli.run("model", "inspect", "export").stdout)["id"]

    saved_file = tmp_path / "export.tar"
    assert model_cli.run("model", "save", "export", "-o", str(saved_file)).returncode == 0
    assert json.loads(members(saved_file.read_bytes())["index.json"])["manifests"][0]["digest"] == model_id

    base = f"{runner_env.base_url}/models"
    assert requests.get(f"{base}/ai/export:latest", timeout=30).json()["id"] == model_id
    assert requests.get(f"{base}/ai/export/export", timeout=30).status_code == 200
    shadowed = requests.get(f"{base}/ai/export", timeout=30)  # reads as "export the model ai"
    assert shadowed.status_code == 404
    assert "name it with its tag: GET /models/ai/export:latest" in shadowed.json()["error"]["message"]


@pytest.mark.parametrize("case", ["traversal", "absolute", "symlink out", "digest mismatch", "truncated"])
def test_load_refuses_a_hostile_archive_in_one_line_and_changes_nothing(
    second: tuple[DockerCLI, RunnerEnv], tmp_path: Path, case: str
) -> None:
    cli, env = second
    store = Store(tmp_path / "source")
    model = store.write_artifact(package(write_gguf(tmp_path / "h.gguf", seed=3)), ["ai/hostile"])
    found = {name: data for name, data, _, _ in hostile(members(saved(store, "hostile")), model)}
    path = tmp_path / f"{case}.tar"
    path.write_bytes(found[case].getvalue())
    assert cli.run("model", "list").returncode == 0  # the runner is up and its store made
    before = contents(env.models_path)

    result = cli.run("model", "load", "-i", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: the model archive was refused: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert contents(env.models_path) == before


def test_load_of_a_file_that_is_no_archive_says_so(second: tuple[DockerCLI, RunnerEnv], tmp_path: Path) -> None:
    cli, _ = second
    path = tmp_path / "notes.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    result = cli.run("model", "load", "-i", str(path))
    assert result.returncode == 1
    assert "has no manifest.json" in result.stderr and "no index.json" in result.stderr


def test_save_of_a_damaged_model_stops_and_leaves_no_file(
    model_cli: DockerCLI, runner_env: RunnerEnv, tmp_path: Path
) -> None:
    packaged = model_cli.run("model", "package", "--gguf", str(write_gguf(tmp_path / "d.gguf", seed=9)), "damaged")
    assert packaged.returncode == 0, packaged.stderr
    store = Store(runner_env.models_path)
    with open(store.blobs.path(store.get("damaged").layers[0].digest), "r+b") as blob:
        blob.seek(10)
        blob.write(b"XX")  # same size, other bytes: found only as the archive is sent

    output = tmp_path / "damaged.tar"
    result = model_cli.run("model", "save", "damaged", "-o", str(output))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: the runner stopped sending damaged after ")
    assert "docker model check" in result.stderr
    assert list(tmp_path.glob("damaged.tar*")) == [] and list(tmp_path.glob(".damaged.tar*")) == []
