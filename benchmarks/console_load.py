"""Page weight and load time of the web console's views, cold and warm, beside a baseline, in one run.

    .venv/bin/python benchmarks/console_load.py [--runs 5]

Starts the runner on a free port over a temporary store holding SmolLM2, answers one chat request (so that
Running and Monitor have something to draw), then opens each view in headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright): **cold** in a fresh browser context (empty cache), **warm** by loading
the same view again in that context. Load time: from the navigation's start to the view drawn with its data
(`performance.now()` once the view's ready element shows). Weight: the bytes of every response the page used
(decoded; the first load, uncompressed, which is what the 300 KB limit is about). Baseline: the runner's
`GET /` (its one-line text page) loaded the same way, which is what any page costs on this runner and browser.
Medians over `--runs`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import machine
from servers import MODEL, prepare_store, start_runner

from tests.fixtures.models import fetch_smollm2

CHROMIUM = "/usr/bin/chromium"
READY = {  # what each view shows once drawn: (role, accessible name, text in one of its rows)
    "models": ("table", "Models", "smollm2"),
    "chat": ("combobox", "Model", ""),
    "running": ("table", "Running models", "smollm2"),
    "monitor": ("table", "Recent requests", "chat/completions"),
}
WEIGHT = """() => performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
    .reduce((sum, entry) => sum + (entry.decodedBodySize || 0), 0)"""


def drawn(view: str) -> Callable[[Page], None]:
    """Waits until `view` shows its data (nothing for the baseline)."""

    def wait(page: Page) -> None:
        if view in READY:
            role, name, text = READY[view]
            found = page.get_by_role(role, name=name)  # type: ignore[arg-type]
            (found.get_by_role("row").filter(has_text=text).first if text else found).wait_for()

    return wait


def measure(page: Page, url: str, ready: Callable[[Page], None]) -> tuple[float, int]:
    """(milliseconds from navigation start to ready, bytes of the responses the page used)."""
    page.goto(url)
    ready(page)
    return page.evaluate("() => performance.now()"), page.evaluate(WEIGHT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="console-load-") as scratch:
        root = Path(scratch)
        prepare_store(fetch_smollm2(), root / "models")
        with start_runner(root / "models", root / "work") as (env, _), sync_playwright() as playwright:
            base = env.base_url
            body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
            httpx.post(f"{base}/engines/v1/chat/completions", json=body, timeout=300).raise_for_status()
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            targets = {"baseline: runner's GET /": (f"{base}/", drawn("baseline"))}
            targets.update({view: (f"{base}/console/#/{view}", drawn(view)) for view in READY})
            rows = []
            for label, (url, ready) in targets.items():
                cold, warm, weights = [], [], []
                for _ in range(args.runs):
                    context = browser.new_context()
                    page = context.new_page()
                    first, weight = measure(page, url, ready)
                    page.goto("about:blank")
                    second, _ = measure(page, url, ready)
                    context.close()
                    cold.append(first)
                    warm.append(second)
                    weights.append(weight)
                rows.append((label, statistics.median(weights), statistics.median(cold), statistics.median(warm)))
            browser.close()
    print("| page | weight (decoded) | cold load | warm load |")
    print("| --- | --- | --- | --- |")
    for label, weight, cold_ms, warm_ms in rows:
        print(f"| {label} | {weight / 1000:.1f} KB | {cold_ms:.0f} ms | {warm_ms:.0f} ms |")
    print(f"\nMedians of {args.runs} runs. {machine(load_before)}")


if __name__ == "__main__":
    main()
