"""The CLI against servers it does not run, in-process with click's runner and fake HTTP servers: an --openaiurl
server that must never see the runner's token and may send anything, a runner that refuses every benchmark
request, and the commands that act on this machine only. Fast: no runner, no model."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from docker_model.cli import endpoint, repl
from docker_model.cli.chat_stream import ChatEndpoint, openai_endpoint
from docker_model.cli.client import RunnerClient
from docker_model.cli.endpoint import endpoint_client
from docker_model.cli.main import cli, main
from docker_model.cli.repl import Conversation, handle_command, runner_context_setter
from docker_model.settings import SettingsError
from tests.fixtures.registry import free_port

MODEL = "some/model"
OSC = "\x1b]0;PWNED\x07"  # retitles a terminal window


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.server
        with fake.lock:
            fake.seen.append(Seen(self.command, self.path, self.headers.get("Authorization"), body))
        route = fake.routes.get(f"{self.command} {self.path}") or fake.routes.get(f"{self.command} *")
        if route is None:
            self.send(404, b'{"error": {"message": "not here"}}')
        elif callable(route):
            route(self)
        else:
            self.send(*route)

    do_GET = do_POST = answer

    def send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


Route = tuple[int, bytes] | Callable[[Handler], None]


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body: bytes


class FakeServer(ThreadingHTTPServer):
    """Answers `METHOD /path` (or `METHOD *`) with its route: (status, JSON body), or a function that answers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.crowded = threading.Event()  # two chat requests were in flight at once
        self.cut = threading.Event()  # a client closed a connection the server was still writing to

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def posts(self) -> list[Seen]:
        return [seen for seen in self.seen if seen.method == "POST"]


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def chunk(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


def sse(*events: str) -> tuple[int, bytes]:
    return 200, "".join(f"data: {event}\n\n" for event in events).encode()


def error_body(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()


MODELS = (200, json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0}]}).encode())


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str | None]:
    """This test's own docker config and state, a runner port nobody uses, and no key or token of the user's."""
    return {
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "DOCKER_MODEL_STATE_DIR": str(tmp_path / "state"),
        "MODEL_RUNNER_HOST": None,
        "MODEL_RUNNER_PORT": str(free_port()),
        "MODELS_PATH": None,
        "MODEL_RUNNER_TOKEN": None,
        "OPENAI_API_KEY": None,
        "DOCKER_MODEL_TLS_CERT": None,
        "DOCKER_MODEL_TLS_KEY": None,
    }


def invoke(env: dict[str, str | None], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def use_context(env: dict[str, str | None], url: str, token: str) -> None:
    for args in (["context", "create", "tunnel", "--host", url, "--token", token], ["context", "use", "tunnel"]):
        result = invoke(env, *args)
        assert result.exit_code == 0, result.output


@pytest.fixture
def isolated(env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """`env`, set in this process, for the tests that call the CLI's functions directly."""
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return env


# Finding 2: the runner's token never reaches an --openaiurl server; $OPENAI_API_KEY does, where it is safe.


@pytest.mark.parametrize("runner_token", ["MODEL_RUNNER_TOKEN", "token file", "context"])
def test_the_runners_token_never_reaches_an_openaiurl_server(
    fake: FakeServer, env: dict[str, str | None], tmp_path: Path, runner_token: str
) -> None:
    fake.routes = {"POST /v1/chat/completions": sse(chunk("hello"), "[DONE]"), "GET /v1/models": MODELS}
    if runner_token == "MODEL_RUNNER_TOKEN":
        env["MODEL_RUNNER_TOKEN"] = "runner-secret"
    elif runner_token == "token file":  # the local runner's, in the state directory the runner shares
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "token").write_text("runner-secret\n")
    else:
        use_context(env, f"http://127.0.0.1:{free_port()}", "runner-secret")
    url = f"{fake.url}/v1"
    chatted = invoke(env, "run", "--openaiurl", url, MODEL, "hi")
    assert chatted.exit_code == 0, chatted.output
    assert chatted.stdout == "hello\n"
    listed = invoke(env, "list", "--openaiurl", url)
    assert listed.exit_code == 0, listed.output
    assert [seen.authorization for seen in fake.seen] == [None, None]

    env["OPENAI_API_KEY"] = "the-key"
    assert invoke(env, "run", "--openaiurl", url, MODEL, "hi").exit_code == 0
    assert invoke(env, "list", "--openaiurl", url).exit_code == 0  # `list` sends the key too
    assert [seen.authorization for seen in fake.seen[2:]] == ["Bearer the-key", "Bearer the-key"]


def test_an_endpoint_that_wants_a_key_says_so_in_one_line(fake: FakeServer, env: dict[str, str | None]) -> None:
    fake.routes = {
        "POST *": (401, error_body("a token is required")),
        "GET *": (401, error_body("a token is required")),
    }
    env["MODEL_RUNNER_TOKEN"] = "runner-secret"
    for path, args in [
        ("/chat/completions", ["run", "--openaiurl", f"{fake.url}/v1", MODEL, "hi"]),
        ("/models", ["list", "--openaiurl", f"{fake.url}/v1"]),
    ]:
        result = invoke(env, *args)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [f"Error: {fake.url}/v1{path} answered HTTP 401: a token is required"]
    assert all(seen.authorization is None for seen in fake.seen)


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://192.0.2.7/v1", True),
        ("http://127.0.0.1:8080/v1", True),
        ("http://localhost:8080/v1", True),
        ("http://[::1]:8080/v1", True),
        ("http://192.0.2.7:8080/v1", False),
        ("http://llm.example.com/v1", False),
    ],
)
def test_the_key_goes_only_where_the_network_cannot_read_it(
    isolated: dict[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    sent: bool,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "the-key")
    client = endpoint_client(url)
    assert client.token == ("the-key" if sent else None)
    warning = capsys.readouterr().err
    assert warning == (
        ""
        if sent
        else f"Warning: OPENAI_API_KEY is not sent to {url}: plain HTTP would show it to "
        "the network on the way; use an https:// URL to send it\n"
    )


# Finding 9: one URL check and one client for both --openaiurl commands; the runner's TLS settings do not apply.


@pytest.mark.parametrize("command", ["run", "list"])
@pytest.mark.parametrize("url", ["http://localhost:99999/v1", "ftp://example.com/v1", "http://", "http://a b/v1"])
def test_a_bad_openaiurl_is_a_usage_error(env: dict[str, str | None], command: str, url: str) -> None:
    args = ["run", "--openaiurl", url, MODEL, "hi"] if command == "run" else ["list", "--openaiurl", url]
    result = invoke(env, *args)
    assert result.exit_code == 2, result.output
    assert f"Error: Invalid value for --openaiurl: {url!r} is not an http(s) URL" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_runners_tls_settings_are_not_used_for_an_openaiurl_server(
    isolated: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's own certificate is no authority for another server, and half its settings no error there."""
    monkeypatch.setenv("DOCKER_MODEL_TLS_CERT", "/nowhere/cert.pem")
    with pytest.raises(SettingsError, match="set both DOCKER_MODEL_TLS_CERT and DOCKER_MODEL_TLS_KEY"):
        RunnerClient("https://127.0.0.1:12434").tls_context()
    assert openai_endpoint("https://127.0.0.1:8443/v1").client.tls_context().verify_mode == ssl.CERT_REQUIRED
    monkeypatch.setenv("DOCKER_MODEL_TLS_KEY", "/nowhere/key.pem")
    with pytest.raises(click.ClickException, match=r"cannot read the certificate /nowhere/cert\.pem"):
        RunnerClient("https://127.0.0.1:12434").tls_context()
    assert endpoint_client("https://127.0.0.1:8443/v1").tls_context().verify_mode == ssl.CERT_REQUIRED


# Findings 10 and 22: what an --openaiurl server streams is checked; an error names that server.


@pytest.mark.parametrize(
    "event", ["not json", "[1, 2]", '"text"', '{"choices": 5}', '{"choices": [{"delta": {"content": 5}}]}']
)
def test_a_stream_event_that_is_not_a_chunk_is_one_line(
    fake: FakeServer, env: dict[str, str | None], event: str
) -> None:
    fake.routes = {"POST /v1/chat/completions": sse(event, "[DONE]")}
    result = invoke(env, "run", "--openaiurl", f"{fake.url}/v1", MODEL, "hi")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: {fake.url}/v1/chat/completions sent a stream event that is not an OpenAI chunk: {event!r}"
    ]


def test_a_cut_stream_names_the_openaiurl_server(fake: FakeServer, env: dict[str, str | None]) -> None:
    fake.routes = {"POST /v1/chat/completions": sse(chunk("hal"))}  # no [DONE]
    result = invoke(env, "run", "--openaiurl", f"{fake.url}/v1", MODEL, "hi")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: the answer from {fake.url}/v1/chat/completions is incomplete: the server stopped before it finished"
    ]


def test_the_chat_goes_on_after_an_event_that_is_not_a_chunk(
    fake: FakeServer,
    isolated: dict[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.routes = {"POST /v1/chat/completions": sse("{oops", "[DONE]")}
    lines = iter(["hi", "again", "/bye"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    repl.chat(openai_endpoint(f"{fake.url}/v1"), MODEL, markdown=False, debug=False)
    assert capsys.readouterr().err.count("sent a stream event that is not an OpenAI chunk") == 2
    assert len(fake.posts()) == 2


# Finding 3: what a server says is printed without its terminal control sequences.


@pytest.mark.parametrize(
    "route",
    [
        (400, error_body(f"{OSC}bad request")),
        (500, f"{OSC}bad request".encode()),
        sse(json.dumps({"error": {"message": f"{OSC}bad request"}})),
    ],
    ids=["error body", "text body", "error event"],
)
def test_a_servers_error_reaches_the_terminal_without_control_sequences(
    fake: FakeServer, env: dict[str, str | None], route: tuple[int, bytes]
) -> None:
    fake.routes = {"POST /v1/chat/completions": route}
    result = invoke(env, "run", "--openaiurl", f"{fake.url}/v1", MODEL, "hi")
    assert result.exit_code == 1
    assert "bad request" in result.stderr and "\x1b" not in result.stderr and "\x07" not in result.stderr


def test_an_unexpected_error_is_printed_without_control_sequences(
    isolated: dict[str, str | None], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(url: str) -> None:
        raise RuntimeError(f"{OSC}boom")

    monkeypatch.setattr(endpoint, "endpoint_models", broken)
    with pytest.raises(SystemExit) as exited:
        main(["list", "--openaiurl", "http://127.0.0.1:1/v1"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == "Error: unexpected RuntimeError: boom\n"


# Finding 17: @path reads regular files up to 1 MiB, and nothing inside a \"\"\" block.


def test_at_path_reads_only_regular_files_up_to_a_mebibyte(
    fake: FakeServer, env: dict[str, str | None], tmp_path: Path
) -> None:
    fake.routes = {"POST /v1/chat/completions": sse(chunk("ok"), "[DONE]")}
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * ((1 << 20) + 1))
    url = f"{fake.url}/v1"
    for word, problem in [
        (
            "/dev/zero",
            "cannot include @/dev/zero: it is not a regular file (write @@/dev/zero to send the word as it is)",
        ),
        (str(tmp_path), f"cannot include @{tmp_path}: it is not a regular file"),
        (str(big), f"cannot include @{big}: it is larger than 1 MiB"),
    ]:
        result = invoke(env, "run", "--openaiurl", url, MODEL, "Read", f"@{word}")
        assert result.exit_code == 1
        assert len(result.stderr.splitlines()) == 1 and problem in result.stderr
    assert fake.posts() == []
    big.write_bytes(b"x" * (1 << 20))
    assert invoke(env, "run", "--openaiurl", url, MODEL, f"@{big}").exit_code == 0


def test_a_fenced_message_is_sent_as_written(
    fake: FakeServer,
    isolated: dict[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    fake.routes = {"POST /v1/chat/completions": sse(chunk("ok"), "[DONE]")}
    monkeypatch.chdir(tmp_path)
    Path("property").write_text("a file that happens to share a decorator's name")
    lines = iter(["@/dev/zero", '"""', "@dataclass", "class A:", "    @property", "/notacommand", '"""', "/bye"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    repl.chat(openai_endpoint(f"{fake.url}/v1"), MODEL, markdown=False, debug=False)
    assert "Error: cannot include @/dev/zero: it is not a regular file" in capsys.readouterr().err
    (sent,) = fake.posts()
    assert json.loads(sent.body)["messages"][-1]["content"] == "@dataclass\nclass A:\n    @property\n/notacommand"


# Finding 16: `/set num_ctx` refuses what is not a whole number, and an answer that is not an object.


def test_num_ctx_takes_ascii_digits_only(capsys: pytest.CaptureFixture[str]) -> None:
    def never(tokens: int) -> str:
        raise AssertionError("not a valid value: nothing should be set")

    for value in ("²", "١٢", "0", "-1"):
        assert handle_command(f"/set num_ctx {value}", Conversation(), never)
        assert f"'{value}' is not a valid value for num_ctx" in capsys.readouterr().out


def test_num_ctx_reports_an_answer_that_is_not_an_object(
    fake: FakeServer, isolated: dict[str, str | None], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes = {"POST /engines/_configure": (202, b"null")}
    client = RunnerClient(fake.url)
    client.checked = True  # a runner already found running
    assert handle_command("/set num_ctx 2048", Conversation(), runner_context_setter(ChatEndpoint(client), "ai/x"))
    error = capsys.readouterr().err
    assert error.startswith(f"Error: unexpected answer from the runner at {fake.url} (HTTP 202): not a JSON object")


# Findings 1 and 15: another machine's runner, even through a loopback tunnel: its token is not shown, and the
# commands that act on this machine refuse it.


def fake_runner(fake: FakeServer) -> None:
    version = {
        "models_path": "/models",
        "listeners": [{"url": "http://0.0.0.0:12434", "token": "all", "kind": "wildcard"}],
    }
    fake.routes = {
        "GET /": (200, b"Docker Model Runner is running"),
        "GET /engines/status": (200, b'{"llama.cpp": "Running: llama.cpp"}'),
        "GET /version": (200, json.dumps(version).encode()),
    }


def test_status_shows_a_contexts_token_only_by_name(fake: FakeServer, env: dict[str, str | None]) -> None:
    fake_runner(fake)
    use_context(env, fake.url, "context-secret")
    result = invoke(env, "status")
    assert result.exit_code == 0, result.output
    assert "Token:       (from context 'tunnel')" in result.stdout and "context-secret" not in result.output

    own = {**env, "MODEL_RUNNER_HOST": fake.url, "MODEL_RUNNER_TOKEN": "my-token"}  # this machine's runner
    assert "Token:       my-token (send it as" in invoke(own, "status").stdout


def test_logs_and_the_runners_lifecycle_refuse_a_context_on_loopback(
    fake: FakeServer, env: dict[str, str | None], tmp_path: Path
) -> None:
    fake_runner(fake)
    port = fake.server_address[1]
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / f"runner-{port}.log").write_text("this machine's runner log\n")
    use_context(env, fake.url, "context-secret")
    for command, fix in [
        ("logs", "its logs are where it runs"),
        ("stop-runner", "manage it where it runs"),
        ("restart-runner", "manage it where it runs"),
    ]:
        result = invoke(env, command)
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines() == [
            f"Error: the runner of context 'tunnel' at {fake.url} is not this machine's own: {fix} "
            "(`docker model context use default` to use this machine's)"
        ]
        assert "this machine's runner log" not in result.stdout


# Findings 18, 19 and 21: bench stops at a refusal or at failures in a row, and at Ctrl-C shows what it measured.


def streaming(crowded: Callable[[Handler], None]) -> Callable[[Handler], None]:
    """A chat answer of a few chunks, 20 ms apart; `crowded` answers a request that came while another was
    being answered (at a concurrency above 1)."""

    def answer(handler: Handler) -> None:
        fake = handler.server
        with fake.lock:
            fake.in_flight += 1
            is_crowded = fake.in_flight > 1
        try:
            if is_crowded:
                fake.crowded.set()
                crowded(handler)
                return
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.end_headers()
            for word in ("one", "two", "three"):
                handler.wfile.write(f"data: {chunk(word)}\n\n".encode())
                handler.wfile.flush()
                time.sleep(0.02)
        finally:
            with fake.lock:
                fake.in_flight -= 1  # before [DONE]: the client's next request is never crowded by this one
        handler.wfile.write(b"data: [DONE]\n\n")

    return answer


def refuse(handler: Handler) -> None:
    handler.send(507, error_body("the model does not fit in memory"))


def hang(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()
    try:
        while True:
            handler.wfile.write(b": still thinking\n\n")
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        handler.server.cut.set()


def bench_runner(fake: FakeServer, chat: Route) -> None:
    fake.routes = {
        "GET /": (200, b"Docker Model Runner is running"),
        f"GET /models/docker.io/{MODEL}:latest": (200, b"{}"),
        "POST /engines/v1/chat/completions": chat,
    }


def test_bench_stops_when_the_runner_refuses(fake: FakeServer, env: dict[str, str | None]) -> None:
    bench_runner(fake, streaming(refuse))
    env["MODEL_RUNNER_HOST"] = fake.url
    began = time.monotonic()
    result = invoke(env, "bench", MODEL, "--concurrency", "2", "--duration", "60s")
    assert result.exit_code == 1
    assert time.monotonic() - began < 30 and len(fake.posts()) <= 3
    assert result.stderr.splitlines()[-1] == (
        "Error: the benchmark stopped at concurrency 2: the runner refused its request: "
        "the model does not fit in memory"
    )

    shown = invoke(env, "bench", MODEL, "--concurrency", "1,2", "--duration", "300ms", "--json")
    assert shown.exit_code == 1
    assert [level["Concurrency"] for level in json.loads(shown.stdout)["results"]] == [1]  # the level measured
    assert "the benchmark stopped at concurrency 2" in shown.stderr


def test_bench_stops_after_failures_in_a_row(fake: FakeServer, env: dict[str, str | None]) -> None:
    bench_runner(fake, (500, error_body("the worker crashed")))
    env["MODEL_RUNNER_HOST"] = fake.url
    result = invoke(env, "bench", MODEL, "--concurrency", "1", "--duration", "60s")
    assert result.exit_code == 1
    assert len(fake.posts()) == 10
    assert result.stderr.count("request failed during the benchmark: the worker crashed") == 10
    assert result.stderr.splitlines()[-1] == (
        "Error: the benchmark stopped at concurrency 1: 10 requests failed in a row, the last: the worker crashed"
    )


def test_bench_shows_the_levels_measured_at_ctrl_c(fake: FakeServer, env: dict[str, str | None]) -> None:
    bench_runner(fake, streaming(hang))
    variables: dict[str, Any] = {**os.environ, **env, "MODEL_RUNNER_HOST": fake.url}
    args = ["bench", MODEL, "--concurrency", "1,2", "--duration", "300ms", "--json"]
    process = subprocess.Popen(
        [sys.executable, "-m", "docker_model.cli", *args],
        env={name: value for name, value in variables.items() if value is not None},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.crowded.wait(60), "the second level never started"
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        began = time.monotonic()
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert time.monotonic() - began < 10
    assert [level["Concurrency"] for level in json.loads(stdout)["results"]] == [1]
    assert "Benchmark interrupted; the levels measured:" in stderr and "Traceback" not in stderr
    assert fake.cut.wait(10), "the answers being read were left open"


@pytest.mark.parametrize(
    ("body", "said"),
    [(b"", "no message"), (b"<html>\n<body>\n<h1>Forbidden</h1>\n</body>\n</html>\n", "<html> <body> <h1>Forbidden")],
)
def test_an_error_page_is_one_line(fake: FakeServer, env: dict[str, str | None], body: bytes, said: str) -> None:
    fake.routes = {"POST /v1/chat/completions": (403, body)}
    result = invoke(env, "run", "--openaiurl", f"{fake.url}/v1", MODEL, "hi")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {fake.url}/v1/chat/completions answered HTTP 403: {said}")
