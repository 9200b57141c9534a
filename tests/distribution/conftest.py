from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distribution.http_proxy import CountingProxy
from tests.distribution.token_server import TokenServer
from tests.fixtures.registry import PASSWORD, USERNAME, RegistryServer, start_registry


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[CountingProxy]:
    """A counting proxy in front of the `registry` fixture."""
    server = CountingProxy(registry.url)
    yield server
    server.close()


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[RegistryServer, TokenServer]]:
    """A registry using bearer tokens from a token server, the way Docker Hub works."""
    if shutil.which("openssl") is None:
        pytest.skip("the token server signs with the openssl command (Debian package openssl)")
    tokens = TokenServer(tmp_path / "token-server", USERNAME, PASSWORD)
    server = start_registry(tmp_path / "token-registry", tokens.registry_auth())
    server.username, server.password = USERNAME, PASSWORD
    yield server, tokens
    server.stop()
    tokens.close()
