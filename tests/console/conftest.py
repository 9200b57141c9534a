"""The web console in a real browser: Debian's Chromium (headless) driven by Playwright, against a real runner with
SmolLM2 in its store. One browser and one runner per test module; each test opens its own browser context (fresh
storage), in the light or the dark colour scheme. Screenshots of the views go to SCREENSHOTS (ignored by git;
`python -m tests.console.copy_screenshots` copies them into docs/images/ for the README)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
import requests

from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env
from tests.runner.conftest import MODEL, load_model

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "tests" / "console" / "screenshots"
AXE = REPO / "docker_model" / "runner" / "console" / "web" / "node_modules" / "axe-core" / "axe.min.js"
VIEWS = ("models", "chat", "running", "monitor")
LINKS = {"models": "Models", "chat": "Chat", "running": "Running", "monitor": "Monitor"}
Scheme = Literal["light", "dark"]
# Set when a page's script runs what a test planted; stays undefined otherwise.
FLAG = "window.__hostile"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the module's tests (Debian's package; nothing downloads a browser)."""
    if not CHROMIUM.exists():
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console_runner(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[RunnerEnv]:
    """A runner with SmolLM2 stored as MODEL, for the module."""
    env = make_runner_env(tmp_path_factory)
    with direct_runner(env):
        load_model(env.base_url, smollm2_gguf, MODEL)
        yield env


@dataclass
class Console:
    """One browser context on the console of a runner: its page, and what the page did that it should not
    (dialogs it opened, uncaught errors)."""

    context: BrowserContext
    page: Page
    base_url: str
    scheme: Scheme
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, view: str = "models") -> Page:
        self.page.goto(f"{self.base_url}/console/#/{view}")
        self.page.get_by_role("navigation", name="Console").wait_for()
        return self.page

    def go(self, view: str) -> Page:
        """Switch view through the console's own navigation."""
        self.page.get_by_role("navigation", name="Console").get_by_role("link", name=LINKS[view]).click()
        self.page.wait_for_url(f"**/console/#/{view}")
        return self.page

    def alerts(self) -> Locator:
        return self.page.get_by_role("region", name="Alerts")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"console-{name}-{self.scheme}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def flag(self) -> object:
        return self.page.evaluate(f"() => {FLAG}")


OpenConsole = Callable[..., Console]


@pytest.fixture
def open_console(browser: Browser, console_runner: RunnerEnv) -> Iterator[OpenConsole]:
    """`open_console(scheme="light", base_url=None)`: a fresh browser context on the console (of the module's
    runner unless `base_url` names another), closed when the test ends."""
    opened: list[Console] = []

    def open_one(scheme: Scheme = "light", base_url: str | None = None) -> Console:
        context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 860})
        console = Console(context, context.new_page(), base_url or console_runner.base_url, scheme)
        console.page.on("dialog", lambda dialog: (console.dialogs.append(dialog.message), dialog.dismiss()))
        console.page.on("pageerror", lambda error: console.errors.append(str(error)))
        opened.append(console)
        return console

    yield open_one
    for console in opened:
        console.context.close()


def row(page: Page, table: str, text: str) -> Locator:
    """The rows of the table named `table` that hold `text`."""
    return page.get_by_role("table", name=table).get_by_role("row").filter(has_text=text)


def named(action: str, reference: str) -> re.Pattern[str]:
    """The accessible name of a button doing `action` to the model `reference` (`ai/x`): the console names Docker
    Hub's `ai/` models as the CLI does, by their short name (`x`) where it lists the store."""
    short = re.escape(reference.removeprefix("ai/"))
    return re.compile(rf"^{action} (ai\/)?{short}$")


def model_names(base_url: str) -> set[str]:
    """Every tag in the runner's store, as `GET /models` lists them."""
    models = requests.get(f"{base_url}/models", timeout=30).json()
    return {tag for model in models for tag in model["tags"]}


def tab_to(page: Page, target: Locator, key: str = "Tab", presses: int = 120) -> None:
    """Press Tab (or `key`: Shift+Tab) until `target` has the focus, as a keyboard user would (fails if it never
    does)."""
    for _ in range(presses):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press(key)
    pytest.fail(f"Tab never reached {target}")


# What `record_changes` can watch: every progress bar's value, or the text length of the element marked watched.
READERS = {
    "progress": "() => [...document.querySelectorAll('[role=progressbar], progress')]"
    ".map(bar => bar.getAttribute('aria-valuenow') ?? String(bar.value))",
    "text": "() => document.querySelector('[data-watched]')?.textContent.length ?? null",
}


def record_changes(page: Page, reader: str) -> None:
    """From now on, the page collects the value READERS[`reader`] gives after every DOM change, each time it differs
    from the last (read them with `changes(page)`). A string put together here and evaluated through the devtools
    protocol: the page's CSP forbids building functions from strings in the page itself."""
    page.evaluate(
        f"""() => {{
            const read = {READERS[reader]};
            window.__seen = [];
            const look = () => {{
                const value = JSON.stringify(read());
                if (value !== window.__seen.at(-1)) window.__seen.push(value);
            }};
            new MutationObserver(look).observe(document.body,
                {{subtree: true, childList: true, attributes: true, characterData: true}});
        }}"""
    )


def changes(page: Page) -> list[Any]:
    return [json.loads(value) for value in page.evaluate("() => window.__seen")]


def axe_violations(page: Page) -> list[dict[str, object]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not AXE.exists():
        pytest.fail(f"axe-core is missing ({AXE}): run `npm ci` in docker_model/runner/console/web")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())  # through the devtools protocol: the page's CSP does not apply
    return page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .filter(violation => ["serious", "critical"].includes(violation.impact))
            .map(violation => ({id: violation.id, impact: violation.impact, help: violation.help,
                                nodes: violation.nodes.map(node => node.target.join(" "))}))"""
    )
