"""Credentials saved by `docker login`: `config.json` `auths`, `credHelpers` and `credsStore`.

Read here rather than through oras' loader, which always merges `~/.docker/config.json` whatever
`DOCKER_CONFIG` says and does not know Docker Hub's `https://index.docker.io/v1/` key.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_DOCKER_HUB_KEYS = (DOCKER_HUB_SERVER, "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password
        return f"Credentials(username={self.username!r})"


def _keys(registry: str) -> list[str]:
    if registry == "docker.io":
        return list(_DOCKER_HUB_KEYS)
    hosts = [registry]
    for a, b in (("localhost", "127.0.0.1"), ("127.0.0.1", "localhost")):
        if registry.startswith(a):
            hosts.append(b + registry[len(a) :])
    return [f"{scheme}{host}" for host in hosts for scheme in ("", "https://", "http://")]


def find_credentials(config_dir: Path, registry: str) -> Credentials | None:
    """Credentials for `registry` from the Docker config in `config_dir`, or None for anonymous access."""
    try:
        config = json.loads((config_dir / "config.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    keys = _keys(registry)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if key in helpers:
            return _from_helper(helpers[key], key)
    auths = config.get("auths") or {}
    for key in keys:
        entry = auths.get(key) or {}
        if entry.get("auth"):
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return Credentials(username, password)
        if entry.get("username") and entry.get("password"):
            return Credentials(entry["username"], entry["password"])
    if config.get("credsStore"):
        for key in keys:
            found = _from_helper(config["credsStore"], key)
            if found is not None:
                return found
    return None


def _from_helper(helper: str, server: str) -> Credentials | None:
    """Ask `docker-credential-<helper> get`; a helper that is missing or knows nothing gives None."""
    try:
        result = subprocess.run(
            [f"docker-credential-{helper}", "get"], input=server, capture_output=True, text=True, timeout=30
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        answer = json.loads(result.stdout)
        return Credentials(answer["Username"], answer["Secret"])
    except (ValueError, KeyError):
        return None
