"""`docker model console` through the real docker CLI: it opens the console's URL in the browser that
$BROWSER names (Python's `webbrowser` honours it), prints only the URL with `--print`, and prints it where
no browser can be opened; never with a token in it. `status` and `status --json` give the same URL."""

from __future__ import annotations

import json
import stat
import webbrowser
from pathlib import Path

import pytest
import requests

from docker_model.cli.console import graphical_browser
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.runner import RunnerEnv


@pytest.mark.parametrize(
    ("found", "opens"),
    [
        (webbrowser.GenericBrowser("firefox"), True),
        (webbrowser.GenericBrowser("lynx"), False),  # a text browser cannot run the console
        (webbrowser.GenericBrowser("www-browser"), False),  # Debian's text browser, without a display
        (None, False),  # no browser at all
    ],
)
def test_only_a_graphical_browser_is_opened(
    monkeypatch: pytest.MonkeyPatch, found: webbrowser.BaseBrowser | None, opens: bool
) -> None:
    def get() -> webbrowser.BaseBrowser:
        if found is None:
            raise webbrowser.Error("could not locate runnable browser")
        return found

    monkeypatch.setattr(webbrowser, "get", get)
    assert graphical_browser() is (found if opens else None)


@pytest.mark.integration
def test_console_opens_the_url_in_the_browser_without_the_token(
    model_cli: DockerCLI, runner_env: RunnerEnv, tmp_path: Path
) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    url = f"{runner_env.base_url}/console/"
    result = DockerCLI(model_cli.docker_config, {**model_cli.env, "BROWSER": str(browser)}).run("model", "console")
    assert result.returncode == 0, result.stderr
    assert opened.read_text() == url
    assert result.stdout.strip() == f"Opened the console in your browser: {url}"
    token = (runner_env.state_dir / "token").read_text().strip()  # the runner wrote it as it started
    assert token and token not in result.stdout + opened.read_text()
    page = requests.get(url, timeout=30)
    assert page.status_code == 200 and page.headers["x-frame-options"] == "DENY"


@pytest.mark.integration
def test_console_prints_the_url_with_print_or_where_no_browser_opens(
    model_cli: DockerCLI, runner_env: RunnerEnv
) -> None:
    url = f"{runner_env.base_url}/console/"
    printed = model_cli.run("model", "console", "--print")
    assert printed.returncode == 0, printed.stderr
    assert (printed.stdout, printed.stderr) == (f"{url}\n", "")
    headless = DockerCLI(
        model_cli.docker_config, {**model_cli.env, "BROWSER": "", "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    )
    result = headless.run("model", "console")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{url}\n"
    assert "No browser could be opened here" in result.stderr


@pytest.mark.integration
def test_status_gives_the_consoles_url(model_cli: DockerCLI, runner_env: RunnerEnv) -> None:
    url = f"{runner_env.base_url}/console/"
    answer = model_cli.run("model", "status", "--json")
    assert answer.returncode == 0, answer.stderr
    status = json.loads(answer.stdout)
    assert status["console"] == url and status["endpointHost"] == f"{runner_env.base_url}/engines/v1/"
    text = model_cli.run("model", "status")
    assert f"Console:     {url}" in text.stdout.splitlines()
