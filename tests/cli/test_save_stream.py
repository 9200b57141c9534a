"""`docker model save` in-process against a stand-in runner that sends the export as Docker Model Runner does
(chunked, no Content-Length), or stops part-way: what the runner failed to send is told apart from what this
machine failed to write, and no partial file is left."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from docker_model.cli.client import RUNNING, RunnerClient
from docker_model.cli.main import cli
from docker_model.units import human_bytes

EXPORT_PATH = "/models/docker.io/ai/tiny:latest/export"
ARCHIVE = b"an OCI image layout tarball, or so " * 1000


@dataclass
class Export:
    how: str = "chunked"  # or "cut" (a Content-Length the body falls short of), or "stall" (then nothing)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Export]:
    export = Export()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/":
                self.send_response(200)
                self.send_header("Content-Length", str(len(RUNNING)))
                self.end_headers()
                self.wfile.write(RUNNING.encode())
                return
            assert self.path == EXPORT_PATH
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.send_header("Connection", "close")
            if export.how == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(ARCHIVE), 4096):
                    piece = ARCHIVE[start : start + 4096]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
                return
            self.send_header("Content-Length", str(len(ARCHIVE)))
            self.end_headers()
            self.wfile.write(ARCHIVE[:5000])
            if export.how == "stall":
                self.wfile.flush()
                time.sleep(3)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MODEL_RUNNER_HOST", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("DOCKER_MODEL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("MODELS_PATH", raising=False)
    try:
        yield export
    finally:
        server.shutdown()
        server.server_close()


def save(output: Path) -> Result:
    return CliRunner().invoke(cli, ["save", "ai/tiny", "-o", str(output)])


def test_an_export_sent_without_content_length_is_saved(runner: Export, tmp_path: Path) -> None:
    result = save(tmp_path / "tiny.tar")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Model ai/tiny saved to {tmp_path / 'tiny.tar'} ({human_bytes(len(ARCHIVE))})\n"
    assert (tmp_path / "tiny.tar").read_bytes() == ARCHIVE


@pytest.mark.parametrize("how", ["cut", "stall"])
def test_an_export_the_runner_stops_sending_is_its_failure_not_the_disks(
    runner: Export, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    runner.how = how
    defaults = RunnerClient.send.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "timeout", 1.0)  # a stalled runner: a read timeout
    result = save(tmp_path / "tiny.tar")
    assert result.exit_code == 1
    why = {"cut": "connection closed", "stall": "timed out"}[how]
    assert re.fullmatch(
        rf"Error: the runner stopped sending ai/tiny after [0-9.]+k?B of {human_bytes(len(ARCHIVE))} \({why}\), "
        r"nothing was saved: 'docker model logs' says why; 'docker model check' finds a damaged store\n",
        result.stderr,
    ), result.stderr
    assert not list(tmp_path.glob("*tiny.tar*"))  # no partial file, no temporary one
