"""The CLI's HTTP client of the runner: starts the runner when needed, turns API errors into one line.

Built on the standard library's http.client rather than requests: every command pays for its imports,
and requests alone more than doubles the start-up time of `docker model list`.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlencode, urlsplit

import click

from docker_model import runner_token, settings
from docker_model.cli import contexts, runner_process
from docker_model.cli.render import safe_for_terminal
from docker_model.reference import InvalidReferenceError, is_id_prefix, parse_reference

if TYPE_CHECKING:
    import ssl

    from rich.status import Status

    from docker_model.api_types import ProgressLine, VersionInfo

NOT_RUNNING = "Docker Model Runner is not running"
RUNNING = "Docker Model Runner is running"
LOCAL_MODELS_HINT = "'docker model list' shows the models you have"
REQUEST_TIMEOUT_SECONDS = 600.0
PROBE_TIMEOUT_SECONDS = 2.0


def qualified(name: str) -> str:
    """Hex digits as given (an ID or its prefix), any other name as its full reference (`docker.io/ai/purge:latest`),
    so that the runner never reads a model name as one of its route words (`purge`, `create`, `load`)."""
    if is_id_prefix(name):  # an ID, a prefix of one, or a name: the runner tries them in Docker's order
        return name
    try:
        return str(parse_reference(name))
    except InvalidReferenceError as error:
        raise click.ClickException(str(error)) from None


def model_path(name: str, suffix: str = "") -> str:
    """The API path of a model: `/models/docker.io/ai/smollm2:latest` plus an optional suffix such as `/push`."""
    return f"/models/{quote(qualified(name), safe='/:@')}{suffix}"


@contextlib.contextmanager
def about_model(name: str, hint: str = LOCAL_MODELS_HINT) -> Iterator[None]:
    """Reports an unknown model by the name the user gave, with advice that fits the command."""
    try:
        yield
    except RunnerError as error:
        if error.code != "model_not_found":
            raise
        raise click.ClickException(f"model not found: {name}; {hint}") from None


def unexpected_answer(reply: Reply, what: str) -> click.ClickException:
    """The error for an answer that is not what the runner sends (another program on its port, or a bug)."""
    return click.ClickException(
        f"unexpected answer from the runner at {reply.url} (HTTP {reply.status}): {what}; "
        "is another program listening on the runner's port?"
    )


class Reply:
    """An HTTP response from the runner, read whole (`json`) or as it streams (`iter_lines`)."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse, url: str) -> None:
        self.connection = connection
        self.response = response
        self.status = response.status
        self.url = url

    def json(self) -> Any:
        with self:
            body = self.response.read()
        try:
            return json.loads(body or b"null")
        except ValueError:
            preview = body[:60].decode("utf-8", errors="replace").strip()
            raise unexpected_answer(self, f"not JSON ({preview!r})") from None

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
        # The current named context, unless a URL is given here or in MODEL_RUNNER_HOST.
        self.context = None if base_url or os.environ.get("MODEL_RUNNER_HOST") else contexts.active_endpoint()
        self.aim(base_url or (self.context.url if self.context else settings.runner_host()))
        self.checked = False
        self.token = (
            settings.runner_token()
            or (self.context.token if self.context else None)
            or (runner_token.read_token() if self.is_local else None)
        )

    def aim(self, base_url: str) -> None:
        """Send the requests to `base_url`: its scheme, host and port, its path a prefix of every request's."""
        self.base_url = base_url
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")

    @property
    def is_local(self) -> bool:
        """Whether the runner is this machine's, on loopback: one this CLI can start, stop and read the token of
        (a named context's runner never is: someone else runs it)."""
        return self.context is None and runner_process.runner_port_of(self.base_url) is not None

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
        headers: dict[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> Reply:
        """One request, whatever its status; raises OSError when the runner cannot be reached."""
        connection = (
            http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.tls_context())
            if self.https
            else http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        )
        headers = {"Accept": "application/json", **(headers or {})}
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        body: bytes | Iterable[bytes] | None = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        chunked = body is not None and not isinstance(body, bytes)
        try:
            try:
                connection.request(method, target, body=body, headers=headers, encode_chunked=chunked)
            except (BrokenPipeError, ConnectionResetError):
                if not chunked:
                    raise
                # The runner answered before the whole body was sent (a refusal): read that answer.
            return Reply(connection, connection.getresponse(), self.base_url)
        except BaseException:
            connection.close()
            raise

    def probe(self) -> str:
        """`runner` when the runner answers, `other` when something else does, `none` when nothing does."""
        try:
            with self.send("GET", "/", timeout=PROBE_TIMEOUT_SECONDS) as reply:
                greeting = reply.response.read(len(RUNNING) + 1)
                return "runner" if reply.status == 200 and greeting == RUNNING.encode() else "other"
        except (OSError, http.client.HTTPException):
            return "none"

    def is_running(self) -> bool:
        return self.probe() == "runner"

    def ensure_running(self, load: str | None = None, host: str | None = None) -> None:
        """Start the runner in the background when it is local and not answering, then wait for it; a runner
        started here begins loading the model `load` at once, and listens on `host` too."""
        if self.checked:
            return
        if self.found_running():
            self.checked = True
            self.warn_if_another_store()
            return
        port = runner_process.runner_port_of(self.base_url) if self.is_local else None
        if port is None:
            way_back = (
                f"or leave context {self.context.name!r}: `docker model context use default`"
                if self.context
                else "or unset MODEL_RUNNER_HOST"
            )
            raise click.ClickException(f"{NOT_RUNNING} at {self.base_url}; start it there, {way_back}")
        try:
            with runner_process.start_lock(port):
                if not self.found_running():  # another CLI may have started it while this one waited
                    self.start_and_wait(port, load, host)
        except runner_process.StateDirError as error:
            raise click.ClickException(str(error)) from None
        self.checked = True

    def warn_if_another_store(self) -> None:
        """A runner already up keeps the store it started with: say so when MODELS_PATH names another."""
        wanted = os.environ.get("MODELS_PATH")
        if not wanted:
            return
        version: VersionInfo = self.send("GET", "/version").json()
        serving = version.get("models_path")
        if serving and os.path.realpath(os.path.expanduser(wanted)) != os.path.realpath(serving):
            click.echo(
                f"Warning: MODELS_PATH is {wanted}, but the running runner uses the store {serving}; "
                "run `docker model restart-runner` to use MODELS_PATH",
                err=True,
            )

    def found_running(self) -> bool:
        """Whether the runner answers; another program on its address is an error naming the way out."""
        found = self.probe()
        if found == "other":
            fix = (
                f"check the host of context {self.context.name!r} (`docker model context inspect {self.context.name}`)"
                if self.context
                else "stop that program, or point MODEL_RUNNER_PORT (or MODEL_RUNNER_HOST) at a free port"
            )
            raise click.ClickException(
                f"{self.base_url} is answered by another program, not Docker Model Runner: {fix}"
            )
        return found == "runner"

    def start_and_wait(self, port: int, load: str | None = None, host: str | None = None) -> None:
        process = runner_process.start(port, load, host)
        with spinner("Starting Docker Model Runner"):
            deadline = time.monotonic() + runner_process.START_TIMEOUT_SECONDS
            while not self.found_running():
                if process.poll() is not None:
                    from docker_model.files import log_tail

                    tail = log_tail(runner_process.log_path(port), 5)
                    if not tail:  # it could not even write its log
                        raise click.ClickException(str(runner_process.StateDirError.unwritable_log(port)))
                    raise click.ClickException(f"the runner failed to start:\n{tail}")
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"the runner did not answer within {runner_process.START_TIMEOUT_SECONDS:.0f}s; "
                        f"see {runner_process.log_path(port)}"
                    )
                time.sleep(0.05)

    def tls_context(self) -> ssl.SSLContext:
        if self.context is not None:
            where = f"--tls-ca-cert of context {self.context.name!r}"
            return tls_context(self.context.ca_file, where, self.context.verify)
        files = settings.tls_files()
        return tls_context(str(files[0]) if files else None, "DOCKER_MODEL_TLS_CERT")

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        """A request to a running (or just started) runner; an error status becomes a one-line CLI error."""
        self.ensure_running()
        try:
            reply = self.send(method, path, **kwargs)
        except (OSError, http.client.HTTPException) as error:
            reason = "timed out" if isinstance(error, socket.timeout) else "connection lost"
            raise click.ClickException(f"{NOT_RUNNING} at {self.base_url} ({reason})") from None
        if reply.status >= 400:
            raise RunnerError.of(reply)
        return reply

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def stream_lines(self, method: str, path: str, **kwargs: Any) -> Iterator[ProgressLine]:
        """JSON lines of a progress stream; an `error` line becomes a one-line CLI error."""
        with self.request(method, path, **kwargs) as reply:
            for line in reply.iter_lines():
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    raise unexpected_answer(reply, f"a progress line that is not a JSON object ({line[:60]!r})")
                if event.get("type") == "error":
                    raise click.ClickException(
                        safe_for_terminal(str(event.get("message", "the runner reported an error")))
                    )
                yield cast("ProgressLine", event)


@functools.cache
def tls_context(ca_file: str | None, source: str, verify: bool = True) -> ssl.SSLContext:
    """The system's trusted authorities, plus `ca_file` (named by `source`): a context's CA, or the runner's own
    certificate when this machine's settings name one (a self-signed certificate is then trusted as itself).
    Without `verify` (a context's --tls-skip-verify) no certificate is checked."""
    import ssl

    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file is not None:
        try:
            context.load_verify_locations(ca_file)
        except (OSError, ssl.SSLError) as error:
            raise click.ClickException(f"cannot read the certificate {ca_file} ({source}): {error}") from None
    return context


class RunnerError(click.ClickException):
    """An error status from the runner: its one-line message, and its `code` (`context_length_exceeded`...)."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @classmethod
    def of(cls, reply: Reply) -> RunnerError:
        """The error an answer's body describes, its text rid of terminal control sequences (a server sent it)."""
        text = reply.text()
        try:
            body = json.loads(text)
        except ValueError:
            return cls(safe_for_terminal(text.strip()) or f"the runner answered HTTP {reply.status}", reply.status)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            message = safe_for_terminal(str(error.get("message") or error))
            return cls(message, reply.status, code if isinstance(code, str) else None)
        return cls(safe_for_terminal(str(error or body)), reply.status)


class spinner:
    """A spinner on stderr while waiting, only on a terminal."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.status: Status | None = None

    def __enter__(self) -> spinner:
        if sys.stderr.isatty():
            from rich.console import Console

            self.status = Console(stderr=True).status(self.message)
            self.status.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.status is not None:
            self.status.stop()
