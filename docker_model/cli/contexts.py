"""The named runner endpoints of `docker model context` (URL, token, TLS): the file that keeps them, and the
current one, which the CLI's client drives (the commands are in `context.py`).

They live in Docker Model Runner's file, `${DOCKER_CONFIG:-~/.docker}/model/contexts.json` (its format, plus a
`token` per context), written whole under a lock and readable by its owner only. `default` is this machine's
runner and is never written; `MODEL_RUNNER_HOST` wins over the current context.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import click

from docker_model import settings

DEFAULT = "default"
VERSION = 1
NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # Docker's rule for context names


class TLSConfig(TypedDict, total=False):
    enabled: bool
    skipVerify: bool
    caCert: str  # an absolute path


class ContextConfig(TypedDict, total=False):
    host: str
    tls: TLSConfig
    description: str
    createdAt: str  # RFC 3339, UTC
    token: str  # this plugin's addition: the runner's token


class ContextFile(TypedDict, total=False):
    version: int
    current: str  # absent: `default`
    contexts: dict[str, ContextConfig]


@dataclass(frozen=True)
class Endpoint:
    """The runner a named context points at, and how to reach it."""

    name: str
    url: str
    token: str | None
    ca_file: str | None
    verify: bool


def file_error(path: Path, problem: object) -> click.ClickException:
    return click.ClickException(f"cannot use the contexts file {path}: {problem}; fix or remove it")


def read(path: Path) -> ContextFile:
    """The file's contents; a missing file holds no context."""
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return {"version": VERSION, "contexts": {}}
    except (OSError, ValueError) as error:
        raise file_error(path, error) from None
    contexts = data.setdefault("contexts", {}) if isinstance(data, dict) else None
    if not isinstance(contexts, dict) or not all(isinstance(c, dict) for c in contexts.values()):
        raise file_error(path, "it is not a JSON object of `contexts`")
    if not isinstance(data.get("current", ""), str):
        raise file_error(path, "its `current` is not a name")
    return data


@contextlib.contextmanager
def updating() -> Iterator[ContextFile]:
    """The file to change in the block, written back whole (0600: it holds tokens) unless the block raises;
    other CLIs wait meanwhile."""
    from docker_model.files import PRIVATE_FILE, atomic_write, make_dirs  # only writers pay for these imports

    path = settings.contexts_path()
    try:
        make_dirs(path.parent)
        lock = os.fdopen(os.open(path.with_name("contexts.lock"), os.O_WRONLY | os.O_CREAT, PRIVATE_FILE), "w")
    except OSError as error:
        raise file_error(path, error.strerror or error) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        contents = read(path)
        yield contents
        contents["version"] = VERSION
        try:
            atomic_write(path, (json.dumps(contents, indent=4) + "\n").encode(), mode=PRIVATE_FILE)
        except OSError as error:
            raise file_error(path, error.strerror or error) from None


def current_name(contents: ContextFile) -> str:
    return contents.get("current") or DEFAULT


def active_endpoint() -> Endpoint | None:
    """The current named context's runner; None for `default` (this machine's runner)."""
    path = settings.contexts_path()
    contents = read(path)
    name = current_name(contents)
    if name == DEFAULT:
        return None
    config = contents["contexts"].get(name)
    if config is None or not isinstance(config.get("host"), str):
        raise file_error(path, f"the current context {name!r} has no host")
    tls = config.get("tls") or {}
    url = config["host"]
    if tls.get("enabled") and url.startswith("http://"):
        url = "https://" + url.removeprefix("http://")
    return Endpoint(name, url.rstrip("/"), config.get("token") or None, tls.get("caCert"), not tls.get("skipVerify"))
