"""The console's Chat, Running and Monitor views in a real browser: an answer streams in with its tok/s and time to
first token; Stop ends the generation on the server (the sequence frees, the token counter stops); the monitor
shows requests made before the page was opened; and one flow by keyboard alone, a chat then a removal with its
confirmation."""

from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import Page, Route

from tests.console.conftest import OpenConsole, changes, model_names, named, record_changes, row, tab_to
from tests.fixtures.runner import RunnerEnv
from tests.fixtures.waiting import wait_until
from tests.runner.conftest import MODEL
from tests.runner.test_inference import FRANCE, SYSTEM
from tests.runner.test_metrics import scrape

pytestmark = pytest.mark.integration

CHAT_ROUTE = "**/engines/v1/chat/completions"


def choose_model(page: Page, name: str) -> None:
    """Pick the option of the Model combobox that names `name` (`ai/x`: its option says `x`)."""
    name = name.removeprefix("ai/")
    picker = page.get_by_role("combobox", name="Model")
    picker.locator("option", has_text=name).first.wait_for(state="attached")
    label = picker.locator("option", has_text=name).first.inner_text()
    picker.select_option(label=label)


def ask(page: Page, message: str, max_tokens: int = 48) -> None:
    choose_model(page, MODEL)
    page.get_by_role("textbox", name="System prompt").fill(SYSTEM["content"])
    page.get_by_role("spinbutton", name="Temperature").fill("0")
    page.get_by_role("spinbutton", name="Max tokens").fill(str(max_tokens))
    page.get_by_role("textbox", name="Message").fill(message)
    page.get_by_role("button", name="Send").click()


def total(env: RunnerEnv, metric: str) -> float:
    """`metric` summed over the models (the worker labels it with the name the model was loaded by)."""
    return sum(found for (name, _), found in scrape(env).items() if name == metric)


def watch_conversation(page: Page) -> None:
    page.get_by_role("region", name="Conversation").evaluate("element => element.dataset.watched = 'yes'")
    record_changes(page, "text")


def test_a_chat_streams_its_answer_with_its_figures(open_console: OpenConsole) -> None:
    console = open_console()
    page = console.open("chat")
    watch_conversation(page)
    ask(page, FRANCE["content"])
    conversation = page.get_by_role("region", name="Conversation")
    conversation.get_by_text("tok/s").wait_for(timeout=60_000)
    assert "Paris" in conversation.inner_text()
    assert "TTFT" in conversation.inner_text()
    lengths = [length for length in changes(page) if length]
    assert len(set(lengths)) >= 3, f"the answer arrived in one piece: {lengths}"
    assert not console.errors


def test_stop_frees_the_sequence_and_stops_the_token_counter(
    open_console: OpenConsole, console_runner: RunnerEnv
) -> None:
    def endless(route: Route) -> None:  # no end of its own: only Stop can end this answer
        body = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps({**body, "ignore_eos": True, "max_tokens": 4000}))

    console = open_console()
    page = console.open("chat")
    page.route(CHAT_ROUTE, endless)
    watch_conversation(page)
    before = total(console_runner, "docker_model_generated_tokens_total")
    ask(page, "Tell me a long story about a lighthouse.")
    busy = lambda: total(console_runner, "docker_model_busy_sequences")  # noqa: E731
    conversation = page.get_by_role("region", name="Conversation")
    # The page first: Playwright runs the route's handler only while the test calls into it.
    assert wait_until(lambda: len([n for n in changes(page) if n]) >= 3 and busy() == 1, seconds=60), (
        busy(),
        changes(page),
        conversation.inner_text(),
    )
    page.get_by_role("button", name="Stop").click()
    assert wait_until(lambda: busy() == 0, seconds=30), "the sequence is still busy after Stop"
    stopped = total(console_runner, "docker_model_generated_tokens_total")
    assert requests.get(f"{console_runner.base_url}/engines/ps", timeout=30).ok  # a round trip, then again:
    assert total(console_runner, "docker_model_generated_tokens_total") == stopped
    assert 0 < stopped - before < 4000
    running = requests.get(f"{console_runner.base_url}/engines/ps", timeout=30).json()
    assert not any(model["in_use"] for model in running), running
    assert not console.errors


def test_the_monitor_shows_requests_made_before_the_page_opened(
    open_console: OpenConsole, console_runner: RunnerEnv
) -> None:
    base = console_runner.base_url
    for _ in range(2):
        answer = requests.post(
            f"{base}/engines/v1/chat/completions",
            json={"model": MODEL, "messages": [SYSTEM, FRANCE], "max_tokens": 8, "temperature": 0},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text

    def sampled() -> bool:
        samples = requests.get(f"{base}/engines/history", timeout=30).json()["samples"]
        return any(figures["requests"] for sample in samples for figures in sample["models"].values())

    assert wait_until(sampled, seconds=30), "the runner's history never counted the requests"
    console = open_console()
    page = console.open("monitor")
    for chart in ("Tokens per second", "Requests", "Errors", "Queue", "Time to first token", "Memory"):
        assert page.get_by_role("img", name=chart, exact=True).count() == 1, chart
    requests_chart = page.get_by_role("figure").filter(has=page.get_by_role("img", name="Requests", exact=True))
    figures = requests_chart.get_by_role("listitem").filter(has_text="smollm2").inner_text()
    peak = re.search(r"peak (\d+(?:\.\d+)?) per", figures)
    assert peak and float(peak.group(1)) >= 1, figures  # the requests sent before the page opened
    recent = row(page, "Recent requests", "chat/completions")
    recent.first.wait_for()
    assert recent.count() >= 2
    console.go("running")
    running = row(page, "Running models", "smollm2")
    running.wait_for()
    page.get_by_role("button", name=named("Unload", MODEL)).click()
    assert wait_until(lambda: not requests.get(f"{base}/engines/ps", timeout=30).json())
    assert not console.errors


def test_a_chat_then_a_removal_by_keyboard_alone(open_console: OpenConsole, console_runner: RunnerEnv) -> None:
    base = console_runner.base_url
    tagged = requests.post(f"{base}/models/ai/smollm2/tag", params={"repo": "ai/keyboard"}, timeout=30)
    assert tagged.status_code == 201, tagged.text
    console = open_console()
    page = console.open("models")
    keys = page.keyboard
    tab_to(page, page.get_by_role("navigation", name="Console").get_by_role("link", name="Chat"))
    keys.press("Enter")
    picker = page.get_by_role("combobox", name="Model")
    tab_to(page, picker)
    for _ in range(picker.locator("option").count()):  # arrows move the choice until it is SmolLM2's
        if "smollm2" in picker.evaluate("select => select.selectedOptions[0]?.textContent ?? ''"):
            break
        keys.press("ArrowDown")
    for field, text in (
        (page.get_by_role("textbox", name="System prompt"), SYSTEM["content"]),
        (page.get_by_role("spinbutton", name="Temperature"), "0"),
        (page.get_by_role("spinbutton", name="Max tokens"), "32"),
        (page.get_by_role("textbox", name="Message"), FRANCE["content"]),
    ):
        tab_to(page, field)
        keys.press("Control+A")
        keys.type(text)
    tab_to(page, page.get_by_role("button", name="Send"))
    keys.press("Enter")
    conversation = page.get_by_role("region", name="Conversation")
    conversation.get_by_text("tok/s").wait_for(timeout=60_000)
    assert "Paris" in conversation.inner_text()
    models_link = page.get_by_role("navigation", name="Console").get_by_role("link", name="Models")
    tab_to(page, models_link, key="Shift+Tab")
    keys.press("Enter")
    tab_to(page, page.get_by_role("button", name=named("Remove", "ai/keyboard")))
    keys.press("Enter")
    dialog = page.get_by_role("dialog", name="Remove model")
    dialog.wait_for()
    assert "docker.io/ai/keyboard:latest" in dialog.inner_text()
    tab_to(page, dialog.get_by_role("button", name="Remove", exact=True))
    keys.press("Enter")
    assert wait_until(lambda: not any("ai/keyboard" in name for name in model_names(base)))
    assert any("ai/smollm2" in name for name in model_names(base))
    assert not console.errors
