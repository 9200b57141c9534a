"""One store with Docker Model Runner: Hugging Face models are tagged `huggingface.co/...`, as DMR tags them,
and found by the names users type (`hf.co/...` or `huggingface.co/...`, any case), in a store laid out as
DMR writes it; `hf.co/...` tags (this tool's before, and older DMR's) read as `huggingface.co/...`.

The store here is written file by file as DMR writes it (`pkg/distribution/internal/store`): `layout.json`,
`models.json` (`files`: the layers, then the config), `blobs/sha256/<hex>`, `manifests/sha256/<hex>`, no
bundles. Hugging Face itself is not reached: the models are already in the store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from docker_model.distribution import Artifact, Store, package
from docker_model.reference import current_tag
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.runner import RunnerEnv

DMR_TAG = "huggingface.co/org/repo-gguf:Q4_K_M"  # as DMR tags `docker model pull hf.co/org/repo-gguf:Q4_K_M`
LEGACY_TAG = "hf.co/org/legacy-gguf:latest"  # as this tool, and DMR before its migration, tagged them
DOCKER_TAG = "docker.io/ai/tiny:latest"


def write_dmr_store(root: Path, models: list[tuple[Artifact, list[str]]]) -> None:
    """A model store as Docker Model Runner writes it."""
    blobs, manifests = root / "blobs" / "sha256", root / "manifests" / "sha256"
    blobs.mkdir(parents=True)
    manifests.mkdir(parents=True)
    (root / "layout.json").write_text(json.dumps({"version": "1.0.0"}))
    entries = []
    for built, tags in models:
        for layer in built.layers:
            assert layer.source is not None
            shutil.copyfile(layer.source, blobs / layer.digest.removeprefix("sha256:"))
        (blobs / built.config_digest.removeprefix("sha256:")).write_bytes(built.config_bytes)
        (manifests / built.id.removeprefix("sha256:")).write_bytes(built.manifest_bytes)
        files = [layer.digest for layer in built.layers] + [built.config_digest]
        entries.append({"id": built.id, "tags": tags, "files": files})
    (root / "models.json").write_text(json.dumps({"models": entries}, indent=2))


def dmr_models(directory: Path, gguf: Path | None = None) -> list[tuple[Artifact, list[str]]]:
    """Three models: a Hugging Face one tagged as DMR does now (`gguf`, else a tiny GGUF), one tagged the
    older way, and one from Docker Hub."""
    return [
        (package(gguf or write_gguf(directory / "repo.gguf", seed=1)), [DMR_TAG]),
        (package(write_gguf(directory / "legacy.gguf", seed=2)), [LEGACY_TAG]),
        (package(write_gguf(directory / "tiny.gguf", seed=3)), [DOCKER_TAG]),
    ]


def test_current_tag() -> None:
    assert current_tag("hf.co/org/repo:Q8_0") == "huggingface.co/org/repo:Q8_0"
    assert current_tag(DMR_TAG) == DMR_TAG
    assert current_tag(DOCKER_TAG) == DOCKER_TAG
    assert current_tag("registry.hf.co/x/y:latest") == "registry.hf.co/x/y:latest"


@pytest.mark.parametrize(
    ("typed", "tag"),
    [
        ("hf.co/org/repo-gguf:Q4_K_M", DMR_TAG),
        ("huggingface.co/org/repo-gguf:Q4_K_M", DMR_TAG),
        ("HF.co/Org/Repo-GGUF:Q4_K_M", DMR_TAG),
        ("hf.co/org/legacy-gguf", "huggingface.co/org/legacy-gguf:latest"),
        ("huggingface.co/org/legacy-gguf:latest", "huggingface.co/org/legacy-gguf:latest"),
        ("tiny", DOCKER_TAG),
    ],
)
def test_a_dmr_store_finds_hugging_face_models_by_the_names_users_type(tmp_path: Path, typed: str, tag: str) -> None:
    write_dmr_store(tmp_path / "store", dmr_models(tmp_path))
    assert Store(tmp_path / "store").get(typed).tags == [tag]


def test_old_tags_are_written_back_in_dmr_form(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_dmr_store(root, dmr_models(tmp_path))
    store = Store(root)
    assert sorted(tag for model in store.list() for tag in model.tags) == sorted(
        [DMR_TAG, "huggingface.co/org/legacy-gguf:latest", DOCKER_TAG]
    )
    store.tag("hf.co/org/legacy-gguf", "hf.co/org/legacy-gguf:v2")  # any write stores the index anew
    written = json.loads((root / "models.json").read_text())
    assert [entry["tags"] for entry in written["models"]] == [
        [DMR_TAG],
        ["huggingface.co/org/legacy-gguf:latest", "huggingface.co/org/legacy-gguf:v2"],
        [DOCKER_TAG],
    ]


def test_a_tag_written_both_ways_is_one_tag(tmp_path: Path) -> None:
    root = tmp_path / "store"
    built = package(write_gguf(tmp_path / "m.gguf"))
    write_dmr_store(root, [(built, ["hf.co/org/repo-gguf:Q4_K_M", DMR_TAG])])
    assert Store(root).get("hf.co/org/repo-gguf:Q4_K_M").tags == [DMR_TAG]


@pytest.fixture(scope="module")
def dmr_store_cli(
    model_cli: DockerCLI, runner_env: RunnerEnv, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> DockerCLI:
    """The CLI on a runner whose store Docker Model Runner wrote; SmolLM2 is the Hugging Face model, so that
    it can load."""
    assert not runner_env.is_up(), "the store must be in place before the runner starts"
    write_dmr_store(runner_env.models_path, dmr_models(tmp_path_factory.mktemp("dmr"), smollm2_gguf))
    return model_cli


@pytest.mark.integration
def test_list_shows_hugging_face_models_as_dmr_names_them(dmr_store_cli: DockerCLI) -> None:
    listed = dmr_store_cli.run("model", "list")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert sorted(names) == ["huggingface.co/org/legacy-gguf", "huggingface.co/org/repo-gguf:Q4_K_M", "tiny"]
    filtered = dmr_store_cli.run("model", "list", "hf.co/org/repo-gguf", "--json")
    assert [model["tags"] for model in json.loads(filtered.stdout)] == [[DMR_TAG]]


@pytest.mark.integration
@pytest.mark.parametrize("typed", ["hf.co/org/repo-gguf:Q4_K_M", "huggingface.co/org/repo-gguf:Q4_K_M"])
def test_inspect_finds_them_by_either_name(dmr_store_cli: DockerCLI, typed: str) -> None:
    inspected = dmr_store_cli.run("model", "inspect", typed)
    assert inspected.returncode == 0, inspected.stderr
    model = json.loads(inspected.stdout)
    assert model["tags"] == [DMR_TAG]
    assert model["config"]["architecture"] == "llama"
    assert model["capabilities"] == ["chat"]


@pytest.mark.integration
def test_the_runner_loads_one_by_its_short_name(dmr_store_cli: DockerCLI) -> None:
    loaded = dmr_store_cli.run("model", "run", "--detach", "hf.co/org/repo-gguf:Q4_K_M")
    assert loaded.returncode == 0, loaded.stderr
    assert "Unable to find model" not in loaded.stdout + loaded.stderr  # found, not pulled
    running = dmr_store_cli.run("model", "ps")
    assert "huggingface.co/org/repo-gguf:Q4_K_M" in running.stdout


@pytest.mark.integration
def test_rm_by_the_short_name_leaves_a_store_dmr_reads(dmr_store_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    removed = dmr_store_cli.run("model", "rm", "hf.co/org/legacy-gguf")
    assert removed.returncode == 0, removed.stderr
    assert "Untagged: huggingface.co/org/legacy-gguf:latest" in removed.stdout
    assert "Deleted: sha256:" in removed.stdout
    written = json.loads((runner_env.models_path / "models.json").read_text())
    assert sorted(tag for entry in written["models"] for tag in entry["tags"]) == [DOCKER_TAG, DMR_TAG]
    assert dmr_store_cli.run("model", "inspect", "hf.co/org/legacy-gguf").returncode == 1
