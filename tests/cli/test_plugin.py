"""The plugin as the real docker CLI sees it: discovery, help, version, usage errors."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from docker_model import __version__
from tests.fixtures.docker_cli import REPO_ROOT, DockerCLI, run_install

pytestmark = pytest.mark.integration


def test_docker_help_lists_the_plugin(docker: DockerCLI) -> None:
    result = docker.run("--help")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("model"))
    assert line.split()[0] == "model*"
    assert "Docker Model Runner" in line


def test_model_help_lists_the_commands(docker: DockerCLI) -> None:
    result = docker.run("model", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: docker model")
    assert "version" in result.stdout.split("Commands:")[1]


def test_version_prints_the_package_version(docker: DockerCLI) -> None:
    result = docker.run("model", "version")
    assert result.returncode == 0, result.stderr
    assert f"Version:    {__version__}" in result.stdout
    assert "OS/Arch:" in result.stdout


def test_metadata_carries_the_package_version(installed_plugin) -> None:
    plugin = installed_plugin / "cli-plugins" / "docker-model"
    result = subprocess.run([str(plugin), "docker-cli-plugin-metadata"], capture_output=True, text=True)
    metadata = json.loads(result.stdout)
    assert metadata["SchemaVersion"] == "0.1.0"
    assert metadata["ShortDescription"] == "Docker Model Runner"
    assert metadata["Version"] == __version__


@pytest.mark.parametrize(
    ("args", "message"), [(["frobnicate"], "No such command"), (["version", "--bogus"], "No such option")]
)
def test_broken_invocations_fail_with_usage(docker: DockerCLI, args: list[str], message: str) -> None:
    result = docker.run("model", *args)
    assert result.returncode == 2
    assert "Usage: docker model" in result.stderr
    assert message in result.stderr


def test_install_into_fresh_dirs_then_uninstall(tmp_path) -> None:
    """The acceptance path: install.sh into an empty DOCKER_CONFIG and virtualenv, then `docker model version`."""
    docker_config, venv = tmp_path / "docker", tmp_path / "venv"
    first = run_install(docker_config, venv)
    assert first.returncode == 0, first.stderr
    assert "llama.cpp backend: cpu" in first.stdout
    again = run_install(docker_config, venv)
    assert again.returncode == 0, again.stderr

    version = DockerCLI(docker_config).run("model", "version")
    assert version.returncode == 0, version.stderr
    assert __version__ in version.stdout

    models = tmp_path / "models-kept"
    models.mkdir()
    gone = run_install(docker_config, venv, "--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not (docker_config / "cli-plugins" / "docker-model").exists()
    assert not venv.exists()
    assert models.exists()


def test_install_rejects_an_old_python(tmp_path) -> None:
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\n[ \"$1\" = -V ] && echo 'Python 3.8.10' && exit 0\nexit 1\n")
    fake.chmod(0o755)
    result = subprocess.run(
        ["sh", str(REPO_ROOT / "install.sh")],
        env={**os.environ, "PYTHON": str(fake), "DOCKER_CONFIG": str(tmp_path / "d")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: Python 3.10 or newer is needed, found Python 3.8.10 at {fake}; "
        "install a newer one or set PYTHON=/path/to/python3"
    ]


def test_install_rejects_an_unknown_gpu() -> None:
    result = subprocess.run(["sh", str(REPO_ROOT / "install.sh"), "--gpu", "rocm"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --gpu must be cuda, metal or cpu, not 'rocm'"
