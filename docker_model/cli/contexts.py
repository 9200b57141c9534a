"""The named runner endpoints of `docker model context` (URL, token, TLS): the file that keeps them, and the
current one, which the CLI's client drives (the commands are in `context.py`).

They live in Docker Model Runner's file, `${DOCKER_CONFIG:-~/.docker}/model/contexts.json` (its format), and
their tokens beside it in `context-tokens.json`, this plugin's own: Docker Model Runner's CLI rewrites its file
with the fields it knows, so a token kept there would be lost. A token is kept for the host it was given with,
and is sent to that host only. Both files are written whole under one lock and are readable by their owner only;
a token an earlier version kept in `contexts.json` is still read, and moved on the next write. `default` is this
machine's runner and is never written; `MODEL_RUNNER_HOST` wins over the current context.
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
    token: str  # where an earlier version of this plugin kept the token: read, and moved to the tokens file


class ContextFile(TypedDict, total=False):
    version: int
    current: str  # absent: `default`
    contexts: dict[str, ContextConfig]


class StoredToken(TypedDict):
    host: str  # the context's host when the token was stored: the token goes to that host only
    token: str


Tokens = dict[str, StoredToken]  # by context name


@dataclass(frozen=True)
class Endpoint:
    """The runner a named context points at, and how to reach it."""

    name: str
    url: str
    token: str | None
    ca_file: str | None
    verify: bool


TOKENS_FILE = "context-tokens.json"


def tokens_path() -> Path:
    return settings.contexts_path().with_name(TOKENS_FILE)


def file_error(path: Path, problem: object) -> click.ClickException:
    what = "context tokens file" if path.name == TOKENS_FILE else "contexts file"
    return click.ClickException(f"cannot use the {what} {path}: {problem}; fix or remove it")


def read_object(path: Path, key: str) -> Any:
    """The JSON object in `path` whose `key` maps names to objects; a missing file holds none."""
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return {key: {}}
    except (OSError, ValueError) as error:
        raise file_error(path, error) from None
    entries = data.setdefault(key, {}) if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(isinstance(entry, dict) for entry in entries.values()):
        raise file_error(path, f"it is not a JSON object of `{key}`")
    return data


def read(path: Path) -> ContextFile:
    """The file's contents; a missing file holds no context."""
    data: ContextFile = read_object(path, "contexts")
    data.setdefault("version", VERSION)
    if not isinstance(data.get("current", ""), str):
        raise file_error(path, "its `current` is not a name")
    return data


def read_tokens() -> Tokens:
    path = tokens_path()
    tokens: Tokens = read_object(path, "tokens")["tokens"]
    if not all(isinstance(t.get("host"), str) and isinstance(t.get("token"), str) for t in tokens.values()):
        raise file_error(path, "a token in it lacks its `host` or `token`")
    return tokens


def token_of(name: str, config: ContextConfig, tokens: Tokens) -> str | None:
    """The token of context `name`, for its host only; a token kept for another host is not sent, and said so."""
    stored = tokens.get(name)
    if stored is None:
        return config.get("token") or None  # kept by an earlier version
    if stored["host"] != config.get("host"):
        click.echo(
            f"Warning: the token of context {name!r} was given for {stored['host']}, not {config.get('host')}: "
            f"it is not sent; `docker model context rm {name}` and create it again with its token",
            err=True,
        )
        return None
    return stored["token"] or None


def moved_tokens(contents: ContextFile, tokens: Tokens) -> Tokens:
    """The tokens to keep: those of the contexts still there, with the ones an earlier version kept in the
    contexts file, which are taken out of it."""
    kept = {name: token for name, token in tokens.items() if name in contents["contexts"]}
    for name, config in contents["contexts"].items():
        legacy = config.pop("token", None)
        if legacy and name not in kept:
            kept[name] = {"host": config.get("host", ""), "token": legacy}
    return kept


@contextlib.contextmanager
def updating() -> Iterator[tuple[ContextFile, Tokens]]:
    """The contexts and their tokens to change in the block, written back whole (0600) unless the block raises;
    other CLIs wait meanwhile. The tokens are written first: a token without its context is never sent."""
    from docker_model.files import PRIVATE_FILE, atomic_write, make_dirs  # only writers pay for these imports

    path, secrets = settings.contexts_path(), tokens_path()
    try:
        make_dirs(path.parent)
        lock = os.fdopen(os.open(path.with_name("contexts.lock"), os.O_WRONLY | os.O_CREAT, PRIVATE_FILE), "w")
    except OSError as error:
        raise file_error(path, error.strerror or error) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        contents, tokens = read(path), read_tokens()
        yield contents, tokens
        contents["version"] = VERSION
        kept = moved_tokens(contents, tokens)
        for target, document in ((secrets, {"version": VERSION, "tokens": kept}), (path, contents)):
            try:
                if target == secrets and not kept:
                    secrets.unlink(missing_ok=True)
                else:
                    atomic_write(target, (json.dumps(document, indent=4) + "\n").encode(), mode=PRIVATE_FILE)
            except OSError as error:
                raise file_error(target, error.strerror or error) from None


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
    token = token_of(name, config, read_tokens())
    return Endpoint(name, url.rstrip("/"), token, tls.get("caCert"), not tls.get("skipVerify"))
