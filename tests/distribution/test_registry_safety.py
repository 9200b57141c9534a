"""Where credentials go, and how much of an answer is read: against the real registry, through the proxy
of http_proxy.py, and small stdlib servers standing in for a token service or a broken registry.

`*.local` names cannot be resolved here, so the client is told to use the proxy as its HTTP(S) proxy
(`HTTP_PROXY`, `HTTPS_PROXY`), as a client behind a company proxy is: requests to `nas.local` reach it as
absolute-form requests and CONNECT tunnels, and the client's own code path is the one a real `*.local`
host gets.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from docker_model.distribution import (
    AuthenticationError,
    DistributionError,
    RegistryClient,
    RegistryError,
    RegistryUnreachableError,
    Store,
    package,
)
from docker_model.distribution.artifact import MAX_MANIFEST_BYTES
from docker_model.distribution.registry.httpio import MAX_JSON_BYTES
from docker_model.distribution.registry.huggingface import MAX_API_BYTES, HuggingFace
from docker_model.distribution.registry.transport import new_session
from tests.distribution.http_proxy import CountingProxy, QuietServer
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import PASSWORD, USERNAME, RegistryServer, write_docker_config

pytestmark = pytest.mark.integration
LOCAL = "nas.local:5000"
MakeProxy = Callable[..., CountingProxy]


def client(tmp_path: Path, docker_config: Path | None = None, **options: Any) -> RegistryClient:
    return RegistryClient(
        Store(tmp_path / "store"), docker_config=docker_config or tmp_path / "no-config", backoff=0.01, **options
    )


@pytest.fixture
def proxies() -> Iterator[MakeProxy]:
    """Make CountingProxy servers, all closed at the end of the test."""
    made: list[CountingProxy] = []

    def make(*args: Any, **options: Any) -> CountingProxy:
        made.append(CountingProxy(*args, **options))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def as_http_proxy(monkeypatch: pytest.MonkeyPatch) -> Callable[[CountingProxy], None]:
    """Make a proxy the HTTP and HTTPS proxy of this process's clients."""

    def use(proxy: CountingProxy) -> None:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)

    return use


def test_local_host_without_tls_is_reached_over_http_without_credentials(
    tmp_path: Path, registry: RegistryServer, proxies: MakeProxy, as_http_proxy: Callable[[CountingProxy], None]
) -> None:
    art = package(write_gguf(tmp_path / "m.gguf"))
    open_proxy = proxies(registry.url)
    as_http_proxy(open_proxy)
    client(tmp_path).push_artifact(art, f"{LOCAL}/ai/tiny")
    assert open_proxy.seen[0] == ("CONNECT", LOCAL, None)  # HTTPS asked first, then plain HTTP
    assert [method for method, _, _ in open_proxy.seen].count("CONNECT") == 1  # and remembered
    assert open_proxy.seen[1][1].startswith(f"http://{LOCAL}/v2/")
    assert client(tmp_path / "puller").pull(f"{LOCAL}/ai/tiny").id == art.id

    # The same host asking for the `docker login` credentials it has: refused, with the fix.
    guarded = proxies(registry.url, credentials=(USERNAME, PASSWORD))
    as_http_proxy(guarded)
    config = write_docker_config(tmp_path / "docker", LOCAL, USERNAME, PASSWORD)
    with pytest.raises(AuthenticationError, match="plain HTTP, which carries credentials only to localhost; serve"):
        client(tmp_path / "guarded", config).pull(f"{LOCAL}/ai/tiny")
    assert guarded.seen and all(authorization is None for _, _, authorization in guarded.seen)


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command (Debian package openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_local_host_with_tls_gets_credentials_over_https(
    tmp_path: Path,
    registry: RegistryServer,
    proxies: MakeProxy,
    as_http_proxy: Callable[[CountingProxy], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = self_signed(tmp_path / "tls", "nas.local")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    front = proxies(registry.url, tls=context, credentials=(USERNAME, PASSWORD))
    tunnel = proxies(registry.url, tunnel_to=front.host)
    as_http_proxy(tunnel)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # the client trusts this certificate
    config = write_docker_config(tmp_path / "docker", LOCAL, USERNAME, PASSWORD)
    art = package(write_gguf(tmp_path / "m.gguf"))
    client(tmp_path, config).push_artifact(art, f"{LOCAL}/ai/tiny")
    assert client(tmp_path / "puller", config).pull(f"{LOCAL}/ai/tiny").id == art.id
    assert {method for method, _, _ in tunnel.seen} == {"CONNECT"}  # nothing in plain HTTP
    assert any(authorization for _, _, authorization in front.seen)


def test_credentials_go_to_the_registry_not_to_its_blob_storage(
    tmp_path: Path, registry: RegistryServer, proxies: MakeProxy
) -> None:
    """Uploads sent to another host (`Location`) and blob downloads redirected to one, as registries
    keeping blobs in S3 do, carry no Authorization header; the registry itself gets it."""
    storage = proxies(registry.url)
    front = proxies(registry.url, credentials=(USERNAME, PASSWORD), foreign=storage.url)
    config = write_docker_config(tmp_path / "docker", front.host, USERNAME, PASSWORD)
    gguf = write_gguf(tmp_path / "m.gguf")
    art = package(gguf)
    client(tmp_path, config).push_artifact(art, f"{front.host}/ai/tiny")
    puller = client(tmp_path / "puller", config)
    assert puller.pull(f"{front.host}/ai/tiny").id == art.id
    assert puller.store.blobs.path(art.layers[0].digest).read_bytes() == gguf.read_bytes()
    methods = {method for method, _, _ in storage.seen}
    assert {"PUT", "GET"} <= methods
    assert all(authorization is None for _, _, authorization in storage.seen)
    assert any(authorization for _, _, authorization in front.seen)


class Stub:
    """A stdlib HTTP server answering every GET with `answer(handler, stub)`."""

    def __init__(self, answer: Answer) -> None:
        self.closed = threading.Event()
        self.seen: list[tuple[str, str | None]] = []  # (path, Authorization header)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                stub.seen.append((self.path, self.headers.get("Authorization")))
                answer(self, stub)

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self.closed.set()
        self._server.shutdown()
        self._server.server_close()


Answer = Callable[[BaseHTTPRequestHandler, Stub], None]
MakeStub = Callable[[Answer], Stub]


@pytest.fixture
def stubs() -> Iterator[MakeStub]:
    made: list[Stub] = []

    def make(answer: Answer) -> Stub:
        made.append(Stub(answer))
        return made[-1]

    yield make
    for stub in made:
        stub.close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def endless(handler: BaseHTTPRequestHandler, stub: Stub, status: int, beyond: int) -> None:
    """An answer of unannounced length that sends `beyond` bytes and then never ends."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    with contextlib.suppress(OSError):  # the client stops reading, as it should
        handler.wfile.write(b'{"errors": "' + b"x" * beyond)
    stub.closed.wait()
    handler.close_connection = True


def stall(handler: BaseHTTPRequestHandler, stub: Stub) -> None:
    stub.closed.wait()


def challenge(realm: str) -> Answer:
    """A registry that asks for a Bearer token from `realm` for everything."""

    def answer(handler: BaseHTTPRequestHandler, stub: Stub) -> None:
        reply(handler, 401, WWW_Authenticate=f'Bearer realm="{realm}",service="stub"')

    return answer


def test_token_service_over_plain_http_elsewhere_gets_no_credentials(tmp_path: Path, stubs: MakeStub) -> None:
    registry = stubs(challenge("http://tokens.local:9/token"))
    config = write_docker_config(tmp_path / "docker", registry.host, USERNAME, PASSWORD)
    with pytest.raises(AuthenticationError, match=r"token service http://tokens\.local:9/token is plain HTTP"):
        client(tmp_path, config).pull(f"{registry.host}/ai/tiny")  # refused before any connection to it


def test_token_service_that_stalls_times_out(tmp_path: Path, stubs: MakeStub) -> None:
    tokens = stubs(stall)
    registry = stubs(challenge(f"http://{tokens.host}/token"))
    started = time.monotonic()
    with pytest.raises(RegistryUnreachableError, match="timed out"):
        client(tmp_path, attempts=2, timeout=(2.0, 0.3)).pull(f"{registry.host}/ai/tiny")
    assert time.monotonic() - started < 5
    assert len(tokens.seen) == 2  # asked again once, as any transient failure is


LIMIT_CASES = {
    "manifest": (MAX_MANIFEST_BYTES, "the manifest of .* is over the 4 MiB limit"),
    "token": (MAX_JSON_BYTES, "the token answer from .* is over the 1 MiB limit"),
    "error body": (MAX_JSON_BYTES, "answered 400: Bad Request$"),
    "hugging face listing": (MAX_API_BYTES, "the answer of .*/tree/main.* is over the 16 MiB limit"),
}


@pytest.mark.parametrize("case", LIMIT_CASES)
def test_answers_are_read_up_to_a_limit(tmp_path: Path, stubs: MakeStub, case: str) -> None:
    """Each answer goes on past its limit and never ends: the client stops at the limit, at once."""
    limit, message = LIMIT_CASES[case]
    status = 400 if case == "error body" else 200
    far = stubs(lambda handler, stub: endless(handler, stub, status, limit + (1 << 16)))
    registry = stubs(challenge(f"http://{far.host}/token")) if case == "token" else far
    hub = HuggingFace(new_session(), endpoint=f"http://{far.host}", token=None)
    puller = client(tmp_path, attempts=1, timeout=(5.0, 30.0), huggingface=hub)
    reference = "hf.co/org/repo" if case == "hugging face listing" else f"{registry.host}/ai/tiny"
    started = time.monotonic()
    with pytest.raises(DistributionError, match=message) as info:
        puller.pull(reference)
    assert time.monotonic() - started < 20  # not the 30 s read timeout: the client stopped reading
    assert "\n" not in str(info.value)
    if case == "error body":
        assert isinstance(info.value, RegistryError)


def test_hugging_face_token_is_not_sent_over_plain_http_elsewhere(
    tmp_path: Path, stubs: MakeStub, proxies: MakeProxy, as_http_proxy: Callable[[CountingProxy], None]
) -> None:
    hub = stubs(lambda handler, stub: reply(handler, 401))
    proxy = proxies(f"http://{hub.host}")
    as_http_proxy(proxy)
    puller = client(tmp_path, huggingface=HuggingFace(new_session(), endpoint="http://hub.local", token="hf_x"))
    with pytest.raises(AuthenticationError, match="HF_ENDPOINT is plain HTTP"):
        puller.pull("hf.co/org/repo")
    assert proxy.seen and all(authorization is None for _, _, authorization in proxy.seen)
