from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.distribution.http_proxy import CountingProxy
from tests.fixtures.registry import RegistryServer


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[CountingProxy]:
    """A counting proxy in front of the `registry` fixture."""
    server = CountingProxy(registry.url)
    yield server
    server.close()
