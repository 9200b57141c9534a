"""Which scheme and host a registry is reached at."""

from __future__ import annotations

import pytest

from docker_model.distribution.registry.transport import Transport, is_insecure, new_session


@pytest.mark.parametrize(
    ("registry", "insecure"),
    [
        ("localhost:5000", True),
        ("localhost", True),
        ("127.0.0.1:1234", True),
        ("nas.local:5000", True),
        ("docker.io", False),
        ("ghcr.io", False),
        ("registry.example.com:443", False),
        ("my.internal:5000", True),  # configured as insecure below
    ],
)
def test_plain_http_only_where_allowed(registry: str, insecure: bool) -> None:
    assert is_insecure(registry, frozenset({"my.internal:5000"})) is insecure


def test_docker_hub_api_host() -> None:
    transport = Transport("docker.io", new_session(), None, insecure=False)
    assert transport.url("ai/smollm2/manifests/latest") == "https://registry-1.docker.io/v2/ai/smollm2/manifests/latest"
    local = Transport("localhost:5000", new_session(), None, insecure=True)
    assert local.url("x/blobs/uploads/") == "http://localhost:5000/v2/x/blobs/uploads/"
    assert local.url("http://localhost:5000/v2/x/blobs/uploads/abc?_state=s") == (
        "http://localhost:5000/v2/x/blobs/uploads/abc?_state=s"  # absolute Location headers stay as they are
    )
