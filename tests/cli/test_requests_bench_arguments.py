"""`requests` and `bench` refuse bad flags before any request, in-process with click's runner; each case
checks that no runner was started. Through the docker CLI and a real runner: test_requests_bench.py."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from docker_model.cli.bench import concurrency_levels
from docker_model.cli.main import cli


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["requests", "--include-existing"], "--include-existing only applies with --follow"),
        (["bench", "ai/x", "--concurrency", "1,0"], "0 is not between 1 and 256"),
        (["bench", "ai/x", "--concurrency", "1,,2"], "'' is not a whole number"),
        (["bench", "ai/x", "--duration", "-1"], "'-1' is negative"),
        (["bench", "ai/x", "--timeout", "5 minutes"], "invalid duration '5 minutes'"),
        (["bench", "ai/x", "--prompt", " "], "the prompt is empty"),
        (["bench"], "Missing argument 'MODEL'"),
    ],
)
def test_bad_flags_are_refused(nowhere: dict[str, str], args: list[str], problem: str) -> None:
    result = CliRunner().invoke(cli, args, env=nowhere)
    assert result.exit_code == 2
    assert problem in result.output


def test_concurrency_levels_are_read_as_docker_model_runner_reads_them() -> None:
    assert concurrency_levels(()) == [1, 2, 4, 8]
    assert concurrency_levels(("4,1", "2", "1")) == [1, 2, 4]
