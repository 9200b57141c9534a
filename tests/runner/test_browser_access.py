"""Browser apps and the runner, in a real browser (Debian's Chromium driven by Playwright): a page from an
allowed origin (localhost) reads a chat answer across origins, preflight and all; the same page from a
foreign origin (127.0.0.2) cannot; and `Host: evil.example` (DNS rebinding) gets a 403."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv
from tests.runner.conftest import MODEL

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FETCH = """async ([url, model]) => {
    try {
        const response = await fetch(url, {
            method: "POST",
            headers: {"Content-Type": "application/json", "Authorization": "Bearer any"},
            body: JSON.stringify({model, messages: [{role: "user", content: "Say hi"}], max_tokens: 4}),
        });
        return {status: response.status, body: await response.json()};
    } catch (error) {
        return {error: String(error)};
    }
}"""


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>app</title><p>an app</p>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_port() -> Iterator[int]:
    """A web app's page, served on every loopback address (so both localhost and 127.0.0.2 serve it)."""
    server = ThreadingHTTPServer(("0.0.0.0", free_port()), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def fetch_from(origin: str, url: str) -> dict:
    """What a page at `origin` gets when its script posts a chat request to `url`."""
    if CHROMIUM is None:
        pytest.skip("no Chromium here: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(origin)
            return page.evaluate(FETCH, [url, MODEL])
        finally:
            browser.close()


def test_a_page_from_an_allowed_origin_reads_the_answer(served: RunnerEnv, page_port: int) -> None:
    answer = fetch_from(f"http://localhost:{page_port}/", f"{served.base_url}/engines/v1/chat/completions")
    assert answer.get("status") == 200, answer
    assert answer["body"]["choices"][0]["message"]["content"]


def test_a_page_from_a_foreign_origin_cannot(served: RunnerEnv, page_port: int) -> None:
    answer = fetch_from(f"http://127.0.0.2:{page_port}/", f"{served.base_url}/engines/v1/chat/completions")
    assert "Failed to fetch" in answer.get("error", ""), answer
    preflight = requests.options(
        f"{served.base_url}/engines/v1/chat/completions",
        headers={"Origin": f"http://127.0.0.2:{page_port}", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert preflight.status_code == 403


def test_an_allowed_preflight_gets_204_with_what_it_asked_for(served: RunnerEnv) -> None:
    preflight = requests.options(
        f"{served.base_url}/v1/chat/completions",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=30,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
    assert preflight.headers["vary"] == "Origin"


def test_a_host_name_of_another_machine_is_refused_on_loopback(served: RunnerEnv) -> None:
    rebound = requests.get(f"{served.base_url}/v1/models", headers={"Host": "evil.example"}, timeout=30)
    assert rebound.status_code == 403
    assert "evil.example" in rebound.json()["error"]["message"]
    assert requests.get(f"{served.base_url}/v1/models", headers={"Host": "localhost"}, timeout=30).status_code == 200
