"""The console's routes: its page and assets from a folder (the built app, or files written here) with the
console's security headers on every answer, errors included; no token for the page, the token for its
session where management needs it; the session (a fresh signed secret each time) only for the console's own
pages; and a secret that every browser's state-changing request must carry unless its origin is listed by name
in DMR_ORIGINS."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from docker_model.runner.accelerator import Accelerator
from docker_model.runner.api.access import AccessGuard, Origins, console_secret, valid_secret
from docker_model.runner.api.error_table import EXPECTED_ERRORS, handle_error
from docker_model.runner.app import create_app
from docker_model.runner.console.routes import CSP, STATIC_DIR, ConsoleHeaders, console_routes
from docker_model.runner.listeners import Listeners, kind_of

TOKEN = "s3cret-token"
KEY = b"k" * 32
SECRET = console_secret(KEY)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
PAGE = "<!doctype html><title>console</title><script type=module src=static/app.js></script>"


def assert_console_headers(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in HEADERS.items():
        assert headers[name] == value, name


@pytest.fixture
def static(tmp_path: Path) -> Path:
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "index.html").write_text(PAGE)
    (folder / "app.js").write_text("export const app = 1;\n")
    (folder / "app.css").write_text("body { margin: 0 }\n")
    (tmp_path / "outside.txt").write_text("not the console's")
    return folder


def console_app(
    static: Path, extra_address: str | None = None, origins: str = "", console_key: bytes | None = KEY
) -> TestClient:
    """The console's routes and a stand-in management route behind the runner's guard, as the runner
    assembles them."""

    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse("done")

    routes = [*console_routes(static), Route("/models/{name:path}", echo, methods=["GET", "POST", "DELETE"])]
    routes.append(Route("/v1/chat/completions", echo, methods=["POST"]))
    listeners = Listeners(port=12434, tls=False, scope_setting=None, bridge_interface=None)
    listeners.add("127.0.0.1", "loopback")
    if extra_address is not None:
        listeners.add(extra_address, kind_of(extra_address, "10.9.9.1"))
    guard = Middleware(AccessGuard, listeners=listeners, token=TOKEN, origins=Origins(origins), console_key=console_key)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ConsoleHeaders), guard],
        exception_handlers=dict.fromkeys(EXPECTED_ERRORS, handle_error),
    )
    app.state.runner = SimpleNamespace(console_key=KEY)
    return TestClient(app, base_url="http://localhost:12434", follow_redirects=False)


def test_the_page_and_its_assets_are_served_with_the_console_headers(static: Path) -> None:
    client = console_app(static)
    moved = client.get("/console")
    assert moved.status_code == 308 and moved.headers["location"] == "/console/"
    assert_console_headers(moved)
    page = client.get("/console/")
    assert page.status_code == 200 and page.text == PAGE
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert_console_headers(page)
    script = client.get("/console/static/app.js")
    assert script.text == "export const app = 1;\n"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"  # nosniff: a module needs it
    assert_console_headers(script)
    style = client.get("/console/static/app.css")
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert_console_headers(style)


@pytest.mark.parametrize(
    "path", ["/console/static/missing.js", "/console/static/..%2Foutside.txt", "/console/static/%00"]
)
def test_files_that_are_not_the_consoles_are_404s_with_the_headers(static: Path, path: str) -> None:
    response = console_app(static).get(path)
    assert response.status_code == 404
    assert "no file" in response.json()["error"]["message"]
    assert "not the console's" not in response.text
    assert_console_headers(response)


def test_a_missing_build_is_a_404_that_says_how_to_build_it(tmp_path: Path) -> None:
    response = console_app(tmp_path).get("/console/")
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "index.html is missing" in message and "npm run build" in message
    assert str(tmp_path) not in message  # the runner's folders are logged, not told
    assert_console_headers(response)


def test_the_page_needs_no_token_and_the_session_needs_it_where_management_does(static: Path) -> None:
    address = "192.0.2.7"  # any other address: the token everywhere
    client = console_app(static, extra_address=address)
    client.base_url = client.base_url.copy_with(host=address)  # the requests arrive on that address
    host = {"Host": f"{address}:12434"}
    assert client.get("/console/", headers=host).status_code == 200
    assert client.get("/console/static/app.js", headers=host).status_code == 200
    refused = client.get("/console/session", headers=host)
    assert refused.status_code == 401
    assert_console_headers(refused)
    assert client.get("/models/ai/x", headers=host).status_code == 401  # data stays behind the token
    signed_in = client.get("/console/session", headers={**host, "Authorization": f"Bearer {TOKEN}"})
    assert valid_secret(KEY, signed_in.json()["secret"])


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),  # no browser: a script or the CLI
        ({"Sec-Fetch-Site": "same-origin"}, 200),
        ({"Origin": "http://localhost:12434"}, 200),  # an older browser's own page
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"}, 403),  # another port: foreign
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "none"}, 403),  # typed in the address bar: a page reads it, not a person
        ({"Origin": "http://localhost:3000"}, 403),
    ],
)
def test_the_session_is_given_to_the_consoles_own_pages_only(static: Path, headers: dict, status: int) -> None:
    response = console_app(static).get("/console/session", headers=headers)
    assert response.status_code == status
    if status == 200:
        assert list(response.json()) == ["secret"] and valid_secret(KEY, response.json()["secret"])
        assert response.headers["cache-control"] == "no-store"
    else:
        assert "secret" not in response.json()
        assert "own page" in response.json()["error"]["message"]


def test_each_session_gets_its_own_secret_signed_by_the_runners_key(static: Path) -> None:
    client = console_app(static)
    first, second = (client.get("/console/session").json()["secret"] for _ in range(2))
    assert first != second and valid_secret(KEY, first) and valid_secret(KEY, second)
    nonce, _, mac = first.partition(".")
    assert not valid_secret(b"another runner's key" * 2, first)
    assert not valid_secret(KEY, f"{nonce}x.{mac}") and not valid_secret(KEY, nonce) and not valid_secret(None, first)
    page = {"Origin": "http://localhost:12434"}
    assert client.delete("/models/ai/x", headers={**page, "X-Docker-Model-Secret": second}).status_code == 200
    other_digit = "1" if mac.endswith("0") else "0"
    forged = {**page, "X-Docker-Model-Secret": f"{nonce}.{mac[:-1]}{other_digit}"}
    assert client.delete("/models/ai/x", headers=forged).status_code == 403


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_browsers_state_changing_request_needs_the_secret(static: Path, method: str) -> None:
    client = console_app(static)
    page = {"Origin": "http://localhost:3000"}  # allowed by default (localhost), yet foreign to the console
    refused = client.request(method, "/models/ai/x", headers=page)
    assert refused.status_code == 403
    assert "X-Docker-Model-Secret" in refused.json()["error"]["message"]
    assert client.request(method, "/models/ai/x", headers={**page, "X-Docker-Model-Secret": "wrong"}).status_code == 403
    console = {"Origin": "http://localhost:12434", "X-Docker-Model-Secret": SECRET}
    assert client.request(method, "/models/ai/x", headers=console).status_code == 200
    assert client.request(method, "/models/ai/x").status_code == 200  # no browser: the CLI, a script
    assert client.get("/models/ai/x", headers=page).status_code == 200  # reading changes nothing


def test_the_runners_own_origin_on_another_address_is_same_origin_yet_needs_the_secret_and_token(
    static: Path,
) -> None:
    """On an address other than loopback (its Host not localhost's), the console's page posts with the runner's
    own origin: not a foreign origin (no DMR_ORIGINS needed, no CORS headers), still the secret and the token."""
    address = "192.0.2.7"
    client = console_app(static, extra_address=address)
    client.base_url = client.base_url.copy_with(host=address)
    own = {"Host": f"{address}:12434", "Origin": f"http://{address}:12434", "Authorization": f"Bearer {TOKEN}"}
    done = client.post("/models/ai/x", headers={**own, "X-Docker-Model-Secret": SECRET})
    assert done.status_code == 200, done.text
    assert "access-control-allow-origin" not in done.headers
    refused = client.post("/models/ai/x", headers=own)
    assert refused.status_code == 403 and "X-Docker-Model-Secret" in refused.json()["error"]["message"]
    no_token = {key: value for key, value in own.items() if key != "Authorization"}
    assert client.post("/models/ai/x", headers={**no_token, "X-Docker-Model-Secret": SECRET}).status_code == 401
    other_port = {**own, "Origin": f"http://{address}:3000", "X-Docker-Model-Secret": SECRET}
    assert client.post("/models/ai/x", headers=other_port).status_code == 403  # not its origin, nor allowed
    # DNS rebinding: an attacker's domain re-pointed at this address is its page's host and origin alike.
    rebound = {"Host": "evil.example:12434", "Origin": "http://evil.example:12434"}
    rebound_chat = client.post("/v1/chat/completions", headers=rebound)
    assert rebound_chat.status_code == 403 and "not allowed" in rebound_chat.json()["error"]["message"]


@pytest.mark.parametrize(
    ("site", "status"), [("cross-site", 403), ("same-site", 403), ("same-origin", 200), ("none", 200)]
)
def test_a_cross_page_request_without_an_origin_needs_the_secret(static: Path, site: str, status: int) -> None:
    client = console_app(static)
    assert client.delete("/models/ai/x", headers={"Sec-Fetch-Site": site}).status_code == status
    signed = {"Sec-Fetch-Site": site, "X-Docker-Model-Secret": SECRET}
    assert client.delete("/models/ai/x", headers=signed).status_code == 200
    assert client.post("/v1/chat/completions", headers={"Sec-Fetch-Site": site}).status_code == 200  # inference


def test_inference_and_origins_listed_by_name_need_no_secret(static: Path) -> None:
    page = {"Origin": "http://localhost:3000"}
    assert console_app(static).post("/v1/chat/completions", headers=page).status_code == 200
    listed = console_app(static, origins="http://localhost:3000")
    assert listed.delete("/models/ai/x", headers=page).status_code == 200
    anyone = console_app(static, origins="*")  # `*` lets pages read, but lists no origin by name
    assert anyone.delete("/models/ai/x", headers={"Origin": "https://any.example"}).status_code == 403
    no_console = console_app(static, console_key=None)  # a guard without a secret lets no browser's change through
    assert no_console.delete("/models/ai/x", headers={**page, "X-Docker-Model-Secret": ""}).status_code == 403


def test_the_runner_serves_the_built_console(tmp_path: Path) -> None:
    """The committed build (docker_model/runner/console/static/, from web/) is what the runner serves."""
    listeners = Listeners(port=12434, tls=False, scope_setting=None, bridge_interface=None)
    listeners.add("127.0.0.1", "loopback")
    app = create_app(tmp_path / "models", tmp_path / "state", listeners, TOKEN, Accelerator("cpu", "test", threads=1))
    client = TestClient(app, base_url="http://localhost:12434")
    page = client.get("/console/")
    assert page.status_code == 200, page.text
    assert page.text == (STATIC_DIR / "index.html").read_text()
    assert_console_headers(page)
    session = client.get("/console/session", headers={"Sec-Fetch-Site": "same-origin"}).json()
    assert valid_secret(app.state.runner.console_key, session["secret"])


def test_the_wheel_ships_the_built_console_and_not_its_sources(tmp_path: Path) -> None:
    """Built offline with the hatchling the test extras install (no build isolation: nothing downloads)."""
    root = Path(__file__).resolve().parents[2]
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(root)]
    built = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("docker_model-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"docker_model/runner/console/static/{path.name}" for path in STATIC_DIR.iterdir() if path.is_file()}
    assert "docker_model/runner/console/static/index.html" in shipped
    assert shipped <= names
    assert not [name for name in names if "/console/web/" in name or "node_modules" in name]
