"""The CLI's HTTP client of the runner: starts the runner when needed, turns API errors into one line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import click
import requests

from docker_model import settings
from docker_model.cli import runner_process

NOT_RUNNING = "Docker Model Runner is not running"


def model_path(name: str, suffix: str = "") -> str:
    """The API path of a model: `/models/ai/smollm2:latest` plus an optional suffix such as `/push`."""
    return f"/models/{quote(name, safe='/:@')}{suffix}"


class RunnerClient:
    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url or settings.runner_host()
        self.session = requests.Session()
        self.session.trust_env = False  # the runner is local: never send it through a proxy
        self.checked = False

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def is_running(self) -> bool:
        try:
            return self.session.get(self.url("/"), timeout=2).ok
        except requests.RequestException:
            return False

    def ensure_running(self) -> None:
        """Start the runner in the background when it is local and not answering, then wait for it."""
        if self.checked or self.is_running():
            self.checked = True
            return
        port = runner_process.runner_port_of(self.base_url)
        if port is None:
            raise click.ClickException(f"{NOT_RUNNING} at {self.base_url}; start it there, or unset MODEL_RUNNER_HOST")
        process = runner_process.start(port)
        with spinner("Starting Docker Model Runner"):
            deadline = time.monotonic() + runner_process.START_TIMEOUT_SECONDS
            while not self.is_running():
                if process.poll() is not None and not self.is_running():
                    tail = runner_process.last_log_lines(port)
                    raise click.ClickException(f"the runner failed to start:\n{tail}")
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"the runner did not answer within {runner_process.START_TIMEOUT_SECONDS:.0f}s; "
                        f"see {runner_process.log_path(port)}"
                    )
                time.sleep(0.05)
        self.checked = True

    def request(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> requests.Response:
        self.ensure_running()
        try:
            response = self.session.request(method, self.url(path), stream=stream, **kwargs)
        except requests.ConnectionError:
            raise click.ClickException(f"{NOT_RUNNING} at {self.base_url}") from None
        if response.status_code >= 400:
            raise click.ClickException(error_message(response))
        return response

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def stream_lines(self, method: str, path: str, **kwargs: Any) -> Iterator[dict]:
        """JSON lines of a progress stream; an `error` line becomes a one-line CLI error."""
        with self.request(method, path, stream=True, **kwargs) as response:
            for line in response.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if event.get("type") == "error":
                    raise click.ClickException(event.get("message", "the runner reported an error"))
                yield event


def error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"the runner answered HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error.get("message") or str(error)
    return str(error or body)


class spinner:
    """A spinner on stderr while waiting, only on a terminal."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.status = None

    def __enter__(self) -> spinner:
        if sys.stderr.isatty():
            from rich.console import Console

            self.status = Console(stderr=True).status(self.message)
            self.status.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.status is not None:
            self.status.stop()
