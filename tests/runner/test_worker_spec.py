"""Worker command lines, the runtime-flag allowlist, and a runner kept free of llama_cpp (no model needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from docker_model.runner.launch import WorkerSpec
from docker_model.runner.runtime_flags import check_runtime_flags


def test_allowed_flags_pass_with_their_values() -> None:
    flags = ("--threads", "4", "--temp=0.2", "-ngl", "-1", "--top-k", "20")
    assert check_runtime_flags(flags) == flags


@pytest.mark.parametrize("flag", ["--model", "--socket=/tmp/x", "--host", "--chat-template"])
def test_other_flags_are_refused(flag: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        check_runtime_flags([flag, "x"])


def test_argv_puts_runtime_flags_last() -> None:
    spec = WorkerSpec(Path("/m.gguf"), ctx_size=8192, parallel=2, runtime_flags=("--threads", "3"))
    argv = spec.argv(Path("/run/w.sock"))
    assert argv[:5] == [sys.executable, "-I", "-u", "-m", "docker_model.runner.worker"]
    assert argv[argv.index("--ctx-size") + 1] == "8192"
    assert argv[argv.index("--parallel") + 1] == "2"
    assert argv[-2:] == ["--threads", "3"]


def test_spec_refuses_bad_flags() -> None:
    with pytest.raises(ValueError):
        WorkerSpec(Path("/m.gguf"), runtime_flags=("--port", "80"))


def test_the_runner_never_imports_llama_cpp() -> None:
    """Only the worker package loads the engine: the runner process stays small and starts fast."""
    import subprocess

    code = (
        "import sys, docker_model.runner.app, docker_model.runner.__main__, docker_model.runner.workers; "
        "print('llama_cpp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
