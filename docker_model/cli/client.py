"""The CLI's HTTP client of the runner: starts the runner when needed, turns API errors into one line.

Built on the standard library's http.client rather than requests: every command pays for its imports,
and requests alone more than doubles the start-up time of `docker model list`.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import click

from docker_model import settings
from docker_model.cli import runner_process

NOT_RUNNING = "Docker Model Runner is not running"
REQUEST_TIMEOUT_SECONDS = 600.0
PROBE_TIMEOUT_SECONDS = 2.0


def model_path(name: str, suffix: str = "") -> str:
    """The API path of a model: `/models/ai/smollm2:latest` plus an optional suffix such as `/push`."""
    return f"/models/{quote(name, safe='/:@')}{suffix}"


class Reply:
    """An HTTP response from the runner, read whole (`json`) or as it streams (`iter_lines`)."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.connection = connection
        self.response = response
        self.status = response.status

    def json(self) -> Any:
        with self:
            return json.loads(self.response.read() or b"null")

    def text(self) -> str:
        with self:
            return self.response.read().decode("utf-8", errors="replace")

    def iter_lines(self) -> Iterator[bytes]:
        for line in self.response:
            yield line.rstrip(b"\r\n")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RunnerClient:
    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url or settings.runner_host()
        parts = urlsplit(self.base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.checked = False

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | Iterable[bytes] | None = None,
        params: dict[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> Reply:
        """One request, whatever its status; raises OSError when the runner cannot be reached."""
        connection_type = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        connection = connection_type(self.host, self.port, timeout=timeout)
        headers = {"Accept": "application/json"}
        body: bytes | Iterable[bytes] | None = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        chunked = body is not None and not isinstance(body, bytes)
        try:
            connection.request(method, target, body=body, headers=headers, encode_chunked=chunked)
            return Reply(connection, connection.getresponse())
        except BaseException:
            connection.close()
            raise

    def is_running(self) -> bool:
        try:
            with self.send("GET", "/", timeout=PROBE_TIMEOUT_SECONDS) as reply:
                return reply.status == 200
        except (OSError, http.client.HTTPException):
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

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        """A request to a running (or just started) runner; an error status becomes a one-line CLI error."""
        self.ensure_running()
        try:
            reply = self.send(method, path, **kwargs)
        except (OSError, http.client.HTTPException) as error:
            reason = "timed out" if isinstance(error, socket.timeout) else "connection lost"
            raise click.ClickException(f"{NOT_RUNNING} at {self.base_url} ({reason})") from None
        if reply.status >= 400:
            raise click.ClickException(error_message(reply))
        return reply

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def stream_lines(self, method: str, path: str, **kwargs: Any) -> Iterator[dict]:
        """JSON lines of a progress stream; an `error` line becomes a one-line CLI error."""
        with self.request(method, path, **kwargs) as reply:
            for line in reply.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if event.get("type") == "error":
                    raise click.ClickException(event.get("message", "the runner reported an error"))
                yield event


def error_message(reply: Reply) -> str:
    text = reply.text()
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip() or f"the runner answered HTTP {reply.status}"
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
