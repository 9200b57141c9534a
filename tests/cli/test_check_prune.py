"""`docker model check [--repair]` and `docker model prune` through the real docker CLI, runner and registry.

The tests of this module share one runner and run in order, as a user's session would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from docker_model.distribution import Store
from docker_model.units import human_bytes
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration

DAY = 24 * 3600


@pytest.fixture(scope="module")
def pulled(model_cli: DockerCLI, module_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small model pushed to the local registry and pulled from it."""
    name = f"{module_registry.host}/ai/checked:v1"
    gguf = write_gguf(tmp_path_factory.mktemp("gguf") / "checked.gguf", seed=11)
    pushed = model_cli.run("model", "package", "--gguf", str(gguf), "--push", name)
    assert pushed.returncode == 0, pushed.stderr
    result = model_cli.run("model", "pull", name)
    assert result.returncode == 0, result.stderr
    return name


def test_check_verifies_a_healthy_store(model_cli: DockerCLI, pulled: str) -> None:
    result = model_cli.run("model", "check")
    assert result.returncode == 0, result.stderr
    first, last = result.stdout.splitlines()[0], result.stdout.splitlines()[-1]
    assert first.startswith("Checked 1 model(s): 2 file(s), ") and first.endswith(" verified")
    assert last == "No problems found"


def test_check_finds_a_corrupt_blob_and_repair_restores_a_consistent_store(
    model_cli: DockerCLI, runner_env: RunnerEnv, pulled: str
) -> None:
    layer = Store(runner_env.models_path).get(pulled).layers[0].digest
    blob = Store(runner_env.models_path).blobs.path(layer)
    with open(blob, "r+b") as f:  # flip bytes in place: the size stays, the digest does not
        f.seek(64)
        original = f.read(4)
        f.seek(64)
        f.write(bytes(b ^ 0xFF for b in original))

    found = model_cli.run("model", "check")
    assert found.returncode == 1
    assert "Problems found:" in found.stdout
    assert f"  model {pulled}: blobs missing or corrupt: {layer}" in found.stdout
    assert "docker model check --repair" in found.stderr
    assert pulled in model_cli.run("model", "list").stdout  # a check alone changes nothing

    repaired = model_cli.run("model", "check", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "Repaired:" in repaired.stdout and "removed it, pull it again" in repaired.stdout
    assert pulled not in model_cli.run("model", "list").stdout
    clean = model_cli.run("model", "check")
    assert (clean.returncode, clean.stdout.splitlines()[-1]) == (0, "No problems found")

    again = model_cli.run("model", "pull", pulled)
    assert again.returncode == 0, again.stderr
    assert pulled in model_cli.run("model", "list").stdout
    assert model_cli.run("model", "check").stdout.splitlines()[-1] == "No problems found"


def backdate(models_path: Path, ids: list[str], seconds: float) -> None:
    """Make the runner's record say these models were last used `seconds` ago."""
    record = models_path / "last-used.json"
    document = json.loads(record.read_text())
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds))
    document["models"].update(dict.fromkeys(ids, when))
    record.write_text(json.dumps(document))


def model_id(cli: DockerCLI, name: str) -> str:
    return json.loads(cli.run("model", "inspect", name).stdout)["id"]


def test_prune_removes_only_models_unused_that_long_and_never_a_loaded_one(
    model_cli: DockerCLI, runner_env: RunnerEnv, smollm2_gguf: Path, tmp_path: Path
) -> None:
    for name, source in (("ai/unused", write_gguf(tmp_path / "u.gguf", seed=21)), ("ai/busy", smollm2_gguf)):
        packaged = model_cli.run("model", "package", "--gguf", str(source), name)
        assert packaged.returncode == 0, packaged.stderr
    assert model_cli.run("model", "run", "--detach", "ai/busy").returncode == 0  # loaded: in use
    unused, busy = model_id(model_cli, "ai/unused"), model_id(model_cli, "ai/busy")
    store = Store(runner_env.models_path)
    freed = sum(
        store.blobs.size(d) for d in [store.get(unused).config_digest, *(la.digest for la in store.get(unused).layers)]
    )
    backdate(runner_env.models_path, [unused, busy], 2 * DAY)

    invalid = model_cli.run("model", "prune", "--unused-for", "2 weeks")
    assert invalid.returncode == 2 and "invalid duration '2 weeks'" in invalid.stderr

    declined = model_cli.run("model", "prune", "--unused-for", "1d", input="n\n")
    assert declined.returncode == 1
    assert "WARNING! This will remove 1 model(s) not used for 1d:" in declined.stderr
    assert "unused" in declined.stderr and "2 days ago" in declined.stderr and "busy" not in declined.stderr
    assert "nothing was removed" in declined.stderr
    assert unused in [m["id"] for m in json.loads(model_cli.run("model", "list", "--json").stdout)]

    pruned = model_cli.run("model", "prune", "--unused-for", "1d", "--force")
    assert pruned.returncode == 0, pruned.stderr
    lines = pruned.stdout.strip().splitlines()
    assert lines[:3] == ["Deleted Models:", "untagged: ai/unused:latest", f"deleted: {unused}"]
    assert lines[-1] == f"Total reclaimed space: {human_bytes(freed)}"
    remaining = [m["id"] for m in json.loads(model_cli.run("model", "list", "--json").stdout)]
    assert unused not in remaining and busy in remaining

    nothing = model_cli.run("model", "prune", "--unused-for", "1d", "--force")
    assert nothing.stdout.splitlines() == ["No models unused for 1d", "Total reclaimed space: 0B"]
