"""axe-core (npm, installed by `npm ci` in docker_model/runner/console/web) finds no serious or critical violation
on any view of the console, in the light and in the dark colour scheme; each view is photographed on the way
(SCREENSHOTS), with a model loaded, an answer in the chat and requests in the monitor."""

from __future__ import annotations

import pytest
import requests

from tests.console.conftest import VIEWS, OpenConsole, Scheme, axe_violations, row
from tests.fixtures.runner import RunnerEnv
from tests.runner.conftest import MODEL
from tests.runner.test_inference import FRANCE, SYSTEM

pytestmark = pytest.mark.integration

# What each view shows once it has drawn its data, so that axe and the screenshot see the view filled in.
READY = {
    "models": lambda page: row(page, "Models", "smollm2"),
    "chat": lambda page: page.get_by_role("region", name="Conversation").get_by_text("tok/s"),
    "running": lambda page: row(page, "Running models", "smollm2"),
    "monitor": lambda page: row(page, "Recent requests", "chat/completions").first,
}


@pytest.fixture(scope="module")
def busy_runner(console_runner: RunnerEnv) -> RunnerEnv:
    """The module's runner with SmolLM2 loaded and two requests answered."""
    for _ in range(2):
        body = {"model": MODEL, "messages": [SYSTEM, FRANCE], "max_tokens": 8, "temperature": 0}
        answer = requests.post(f"{console_runner.base_url}/engines/v1/chat/completions", json=body, timeout=300)
        assert answer.status_code == 200, answer.text
    return console_runner


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_or_critical_violation_on_any_view(
    open_console: OpenConsole, busy_runner: RunnerEnv, scheme: Scheme
) -> None:
    console = open_console(scheme)
    page = console.open("models")
    found = {}
    for view in VIEWS:
        console.go(view)
        if view == "chat":
            picker = page.get_by_role("combobox", name="Model")
            picker.locator("option", has_text="smollm2").first.wait_for(state="attached")
            picker.select_option(label=picker.locator("option", has_text="smollm2").first.inner_text())
            page.get_by_role("textbox", name="Message").fill("Write a Python function that adds two numbers.")
            page.get_by_role("spinbutton", name="Max tokens").fill("64")
            page.get_by_role("button", name="Send").click()
        READY[view](page).wait_for(timeout=60_000)
        console.alerts().wait_for(state="attached")
        found[view] = axe_violations(page)
        console.screenshot(view)
    assert page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches") == (scheme == "dark")
    assert all(not violations for violations in found.values()), found
    assert not console.errors
