"""The console's alerts, each provoked for real and seen in the Alerts region: a queue of one filled by parallel
requests ("Queue full"), a worker killed with SIGKILL ("Worker crashed"), and a memory budget just above what the
model uses ("Memory"), the last on a runner that also requires its token on loopback, so that the console asks
for it (the Sign in dialog) before it shows anything."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from docker_model.distribution import Store, package
from tests.console.conftest import OpenConsole
from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env
from tests.runner.conftest import MODEL
from tests.runner.test_inference import FRANCE, SYSTEM

pytestmark = pytest.mark.integration

ALERT_SECONDS = 30_000  # ms: a sample every 5 s, the page asks every 5 s


def chat(base_url: str, headers: dict[str, str] | None = None, **fields: object) -> int:
    body = {"model": MODEL, "messages": [SYSTEM, FRANCE], "max_tokens": 8, "temperature": 0, **fields}
    return requests.post(f"{base_url}/engines/v1/chat/completions", json=body, headers=headers, timeout=120).status_code


def running(base_url: str, headers: dict[str, str] | None = None) -> list[dict]:
    return requests.get(f"{base_url}/engines/ps", headers=headers, timeout=30).json()


def test_a_full_queue_raises_the_queue_alert(open_console: OpenConsole, console_runner: RunnerEnv) -> None:
    base = console_runner.base_url
    flags = {"model": MODEL, "runtime-flags": ["--parallel", "1", "--max-queue", "1"]}
    assert requests.post(f"{base}/engines/_configure", json=flags, timeout=300).status_code == 202
    try:
        console = open_console()
        console.open("models")
        with ThreadPoolExecutor(3) as pool:  # one answering, one waiting, one refused; the waiting one answered
            statuses = sorted(pool.map(lambda _: chat(base, max_tokens=200, ignore_eos=True), range(3)))
        assert statuses == [200, 200, 503], statuses
        alerts = console.alerts()
        alerts.get_by_text("Queue full").wait_for(timeout=ALERT_SECONDS)
        assert "smollm2" in alerts.inner_text()
        console.go("chat")  # on every view
        alerts.get_by_text("Queue full").wait_for()
        assert not console.errors
    finally:  # the next tests share this runner: its flags back to none (an empty list clears them)
        cleared = {"model": MODEL, "runtime-flags": []}
        assert requests.post(f"{base}/engines/_configure", json=cleared, timeout=300).status_code == 202


def test_a_killed_worker_raises_the_crash_alert(open_console: OpenConsole, console_runner: RunnerEnv) -> None:
    base = console_runner.base_url
    assert chat(base) == 200
    pid = running(base)[0]["pid"]
    console = open_console()
    console.open("running")
    os.kill(pid, signal.SIGKILL)
    console.alerts().get_by_text("Worker crashed").wait_for(timeout=ALERT_SECONDS)
    console.go("monitor")
    console.alerts().get_by_text("Worker crashed").wait_for()
    assert not console.errors


def test_memory_near_the_budget_raises_the_memory_alert_after_sign_in(
    open_console: OpenConsole, console_runner: RunnerEnv, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert chat(console_runner.base_url) == 200
    estimate = running(console_runner.base_url)[0]["memory_estimated"]
    budget = int(estimate * 1.03)  # the model fits; what its worker holds is then well past 90% of the budget
    env = make_runner_env(
        tmp_path_factory, DOCKER_MODEL_MEMORY_BUDGET=str(budget), DOCKER_MODEL_REQUIRE_TOKEN="management"
    )
    Store(env.models_path).write_artifact(package(smollm2_gguf), [MODEL])
    with direct_runner(env):
        token = (env.state_dir / "token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        assert chat(env.base_url) == 200  # inference needs no token on loopback
        assert running(env.base_url, headers)[0]["memory_measured"] >= 0.9 * budget
        console = open_console(base_url=env.base_url)
        page = console.page
        page.goto(f"{env.base_url}/console/#/monitor")
        dialog = page.get_by_role("dialog", name="Sign in")
        dialog.wait_for()
        dialog.get_by_label("Token").fill(token)  # a password field: no textbox role
        dialog.get_by_role("button", name="Sign in").click()
        console.alerts().get_by_text("Memory", exact=True).wait_for(timeout=ALERT_SECONDS)
        assert page.evaluate("() => JSON.stringify(localStorage)").find(token) == -1
        assert page.evaluate("() => JSON.stringify(sessionStorage)").find(token) != -1
        assert token not in page.url
        assert not console.errors
