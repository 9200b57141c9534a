"""Memory-aware loading as a user meets it through the real docker CLI, on a runner given a budget of
300 MiB (DOCKER_MODEL_MEMORY_BUDGET): SmolLM2's default 4096 tokens × 4 sequences (about 550 MiB) loads
smaller, and a configured context that cannot fit is a one-line error with the sizes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_everyday_errors import one_line_error
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.runner import make_runner_env

pytestmark = pytest.mark.integration

MODEL = "ai/smollm2"


@pytest.fixture(scope="module")
def tight_cli(
    installed_plugin: Path, tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> Iterator[DockerCLI]:
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_MEMORY_BUDGET="300MiB")
    cli = DockerCLI(installed_plugin, env.variables())
    packaged = cli.run("model", "package", "--gguf", str(smollm2_gguf), MODEL)
    assert packaged.returncode == 0, packaged.stderr
    yield cli
    env.stop()


def test_the_default_context_loads_smaller_and_ps_says_so(tight_cli: DockerCLI) -> None:
    answered = tight_cli.run("model", "run", MODEL, "Hi")
    assert answered.returncode == 0, answered.stderr
    _, row = tight_cli.run("model", "ps").stdout.strip().splitlines()
    context, sequences = row.split()[-4:-2]
    assert int(context) * int(sequences) < 4096 * 4 and int(context) >= 2048
    table = tight_cli.run("model", "configure", "show", MODEL).stdout
    assert "the default (4096 tokens), reduced to fit 314.57MB of RAM" in table


def test_a_configured_context_that_cannot_fit_is_one_line_with_the_sizes(tight_cli: DockerCLI) -> None:
    line = one_line_error(tight_cli.run("model", "configure", "--context-size", "8192", MODEL))
    assert "does not fit in memory" in line and "8192 tokens × 4 sequences" in line and "314.57MB of RAM" in line
    assert "docker model configure --context-size" in line
    shown = tight_cli.run("model", "show", "--context-size", "8192", MODEL).stdout
    assert "Fits           no" in shown
