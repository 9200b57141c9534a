"""Where `docker login` credentials are found: config.json `auths`, `credHelpers`, `credsStore`."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from docker_model.distribution.registry.credentials import Credentials, find_credentials


def write_config(directory: Path, config: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def basic(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def helper_script(bin_dir: Path, name: str, known: dict[str, tuple[str, str]]) -> None:
    """A `docker-credential-<name>` that knows the given servers (the real helper protocol)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    cases = "".join(
        f'  "{server}") echo \'{{"ServerURL":"{server}","Username":"{u}","Secret":"{p}"}}\' ;;\n'
        for server, (u, p) in known.items()
    )
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        f'#!/bin/sh\nread server\ncase "$server" in\n{cases}  *) echo "credentials not found"; exit 1 ;;\nesac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_docker_hub_uses_the_index_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"auths": {"https://index.docker.io/v1/": basic("me", "pw:with:colons")}})
    assert find_credentials(config, "docker.io") == Credentials("me", "pw:with:colons")
    assert find_credentials(config, "ghcr.io") is None


def test_localhost_and_loopback_are_one_host(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"auths": {"127.0.0.1:5000": basic("a", "b")}})
    assert find_credentials(config, "localhost:5000") == Credentials("a", "b")
    config = write_config(
        tmp_path / "2", {"auths": {"https://registry.example.com": {"username": "u", "password": "p"}}}
    )
    assert find_credentials(config, "registry.example.com") == Credentials("u", "p")


def test_missing_or_broken_config_means_anonymous(tmp_path: Path) -> None:
    assert find_credentials(tmp_path / "none", "docker.io") is None
    (tmp_path / "config.json").write_text("{not json")
    assert find_credentials(tmp_path, "docker.io") is None


def test_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    helper_script(bin_dir, "store", {"https://index.docker.io/v1/": ("hub", "s1")})
    helper_script(bin_dir, "special", {"ghcr.io": ("gh", "s2")})
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = write_config(
        tmp_path / "cfg",
        {"auths": {"ghcr.io": basic("inline", "x")}, "credsStore": "store", "credHelpers": {"ghcr.io": "special"}},
    )
    assert find_credentials(config, "docker.io") == Credentials("hub", "s1")
    assert find_credentials(config, "ghcr.io") == Credentials("gh", "s2")  # credHelpers come first
    assert find_credentials(config, "quay.io") is None  # the store does not know it
    missing = write_config(tmp_path / "missing", {"credsStore": "not-installed"})
    assert find_credentials(missing, "docker.io") is None
    assert "s1" not in repr(Credentials("hub", "s1"))
