"""Hostile content and hostile pages against the console, in a real browser.

- A model whose GGUF metadata holds HTML and script, and an answer forced (a `grammar` added to the page's chat
  request through Playwright's request routing) to hold them and a Markdown image pointing at a second local
  server: the text is visible as text, no script runs (FLAG stays unset, no dialog opens) and the second server
  receives nothing.
- A page served on another localhost port cannot frame the console, nor remove a model by form post or by fetch
  (with or without asking for the session's secret); the model is still there afterwards. The form's payload is
  a working prune request: sent without an Origin (as a script outside a browser would, with the runner's
  loopback rules) it does remove a model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Route

from tests.console.conftest import FLAG, Console, OpenConsole, model_names, named, row
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.hostile_model import hostile_strings, write_hostile_gguf
from tests.fixtures.recording_server import RecordingServer, recording_server
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv
from tests.runner.conftest import MODEL, load_model

pytestmark = pytest.mark.integration

HOSTILE = "ai/hostile"
SECRET_HEADER = "X-Docker-Model-Secret"


@pytest.fixture(scope="module")
def beacon() -> Iterator[RecordingServer]:
    """The second local server: hostile content points at it, and it must hear nothing."""
    with recording_server() as server:
        yield server


@pytest.fixture(scope="module")
def hostile_runner(
    console_runner: RunnerEnv, beacon: RecordingServer, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> RunnerEnv:
    """The module's runner with HOSTILE stored too: SmolLM2 with metadata that is HTML and script."""
    gguf = tmp_path_factory.mktemp("hostile") / "hostile.gguf"
    load_model(console_runner.base_url, write_hostile_gguf(smollm2_gguf, gguf, hostile_strings(beacon.url)), HOSTILE)
    return console_runner


def unharmed(console: Console, beacon: RecordingServer) -> None:
    """Nothing planted ran: no flag, no dialog, no request to the second server, no page error."""
    assert console.flag() is None, f"{FLAG} was set: a planted script ran"
    assert console.dialogs == [], console.dialogs
    assert beacon.received == [], beacon.received
    assert console.errors == [], console.errors


def test_hostile_metadata_shows_as_text(
    open_console: OpenConsole, hostile_runner: RunnerEnv, beacon: RecordingServer
) -> None:
    console = open_console()
    page = console.open("models")
    row(page, "Models", "hostile").wait_for()
    page.get_by_role("button", name=named("Inspect", HOSTILE)).click()
    shown = page.get_by_text("<script>window.__hostile=2</script>", exact=False).first
    shown.wait_for()
    assert shown.is_visible()
    body = page.locator("body").inner_text()
    assert "onerror=" in body and "metadata-markdown.png" in body
    page.mouse.move(0, 0)
    page.get_by_text("onmouseover", exact=False).first.hover()
    unharmed(console, beacon)


def test_a_forced_hostile_answer_shows_as_text(
    open_console: OpenConsole, hostile_runner: RunnerEnv, beacon: RecordingServer
) -> None:
    image = f"{beacon.url}/answer.png"
    answer = (
        f'<img src=x onerror="window.__hostile=4;alert(4)"> <script>window.__hostile=5;alert(5)</script> '
        f"![pixel]({image})"
    )
    grammar = "root ::= " + json.dumps(answer)  # a GBNF literal: a JSON string's escapes are GBNF's

    def forced(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps({**body, "grammar": grammar, "max_tokens": 400}))

    console = open_console()
    page = console.open("chat")
    page.route("**/engines/v1/chat/completions", forced)
    picker = page.get_by_role("combobox", name="Model")
    picker.locator("option", has_text="smollm2").first.wait_for(state="attached")
    picker.select_option(label=picker.locator("option", has_text="smollm2").first.inner_text())
    page.get_by_role("textbox", name="Message").fill("Say anything.")
    page.get_by_role("button", name="Send").click()
    conversation = page.get_by_role("region", name="Conversation")
    conversation.get_by_text("tok/s").wait_for(timeout=60_000)
    text = conversation.inner_text()
    assert "<script>window.__hostile=5;alert(5)</script>" in text, text
    assert 'onerror="window.__hostile=4;alert(4)"' in text and image in text, text
    assert conversation.locator("img, script, iframe, object, embed").count() == 0
    unharmed(console, beacon)


class ForeignPages(BaseHTTPRequestHandler):
    """Pages of another app on localhost: `/frame` frames the console, `/form` posts a prune request to the
    runner; anything else is a blank page to run scripts in."""

    runner = ""  # the runner's base URL
    prune_form = ""  # the text/plain form's field: name and value make a prune request's JSON

    def do_GET(self) -> None:
        pages = {
            "/frame": f'<iframe title="framed" src="{self.runner}/console/#/models"></iframe>',
            "/form": f'<form method="post" enctype="text/plain" action="{self.runner}/models/_prune">'
            f"{self.prune_form}<button>Go</button></form>",
        }
        body = f"<!doctype html><title>another app</title>{pages.get(self.path, '<p>another app</p>')}".encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def prune_payload(model_id: str) -> tuple[str, str]:
    """A text/plain form field (name, value) whose `name=value` body is a prune request deleting `model_id`."""
    return f'{{"unused_for": "0s", "models": ["{model_id}", "', '"]}'


@pytest.fixture(scope="module")
def foreign(hostile_runner: RunnerEnv) -> Iterator[str]:
    """`http://127.0.0.1:PORT`: another app's pages, on another port of this machine: same-site with the runner
    (which the browser reaches at 127.0.0.1), so that SameSite rules are no part of what stops them."""
    model_id = requests.get(f"{hostile_runner.base_url}/models/{HOSTILE}", timeout=30).json()["id"]
    name, value = prune_payload(model_id)
    field = f"<input type=\"hidden\" name='{name}' value='{value}'>"
    handler = type("Pages", (ForeignPages,), {"runner": hostile_runner.base_url, "prune_form": field})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_prune_payload_works_without_a_browser(hostile_runner: RunnerEnv, tmp_path: Path) -> None:
    base = hostile_runner.base_url
    load_model(base, write_gguf(tmp_path / "decoy.gguf", seed=99), "ai/decoy")
    decoy = requests.get(f"{base}/models/ai/decoy", timeout=30).json()["id"]
    name, value = prune_payload(decoy)
    pruned = requests.post(f"{base}/models/_prune", data=f"{name}={value}\r\n", timeout=30)
    assert pruned.status_code == 200, pruned.text
    assert pruned.json()["deleted"] and not any("ai/decoy" in tag for tag in model_names(base))


def test_another_localhost_page_cannot_frame_the_console(open_console: OpenConsole, foreign: str) -> None:
    console = open_console()
    page = console.page
    page.goto(f"{foreign}/frame", wait_until="load")
    framed = page.frame_locator("iframe")
    assert framed.get_by_role("navigation", name="Console").count() == 0
    assert all("/console/" not in frame.url or frame.url.startswith("chrome-error") for frame in page.frames[1:])
    headers = requests.get(f"{console.base_url}/console/", timeout=30).headers
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_another_localhost_page_cannot_remove_a_model(
    open_console: OpenConsole, hostile_runner: RunnerEnv, foreign: str
) -> None:
    base = hostile_runner.base_url
    console = open_console()
    page = console.page
    page.goto(f"{foreign}/form")
    with page.expect_response(lambda response: "/models/_prune" in response.url) as posted:
        page.get_by_role("button", name="Go").click()
    assert posted.value.status == 403
    assert SECRET_HEADER in posted.value.text()
    page.goto(foreign)
    model_id = requests.get(f"{base}/models/{HOSTILE}", timeout=30).json()["id"]
    attempts = page.evaluate(
        """async ([base, reference, id, header]) => {
            const attempt = async (path, options) => {
                try {
                    const response = await fetch(base + path, options);
                    return response.type === "opaque" ? "opaque" : response.status;
                } catch (error) {
                    return String(error);
                }
            };
            let secret = "";
            try {
                secret = (await (await fetch(base + "/console/session")).json()).secret ?? "";
            } catch (error) {}
            return {
                secret,
                deleted: await attempt("/models/" + reference, {method: "DELETE"}),
                pruned: await attempt("/models/_prune", {method: "POST", mode: "no-cors",
                    body: JSON.stringify({unused_for: "0s", models: [id]})}),
                withSecret: await attempt("/models/" + reference, {method: "DELETE", headers: {[header]: secret}}),
            };
        }""",
        [base, HOSTILE, model_id, SECRET_HEADER],
    )
    assert attempts["secret"] == "", attempts
    assert attempts["deleted"] in (403, "TypeError: Failed to fetch"), attempts
    assert attempts["withSecret"] in (403, "TypeError: Failed to fetch"), attempts
    assert any(HOSTILE in tag for tag in model_names(base)), "the foreign page removed the model"
    assert any(MODEL in tag for tag in model_names(base))
