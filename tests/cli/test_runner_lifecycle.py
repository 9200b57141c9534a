"""The runner's life as the CLI manages it: only the installed code runs, only our runner is ever
signalled, many CLIs at once start one runner, and another program on the port is named as such.
Each test has a runner environment of its own and leaves no runner behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
import requests

from docker_model import distribution
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.runner import RunnerEnv, make_runner_env
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerEnv]:
    env = make_runner_env(tmp_path_factory)
    yield env
    env.stop()


@pytest.fixture
def cli(installed_plugin: Path, fresh_env: RunnerEnv) -> DockerCLI:
    return DockerCLI(installed_plugin, fresh_env.variables())


def runner_processes(port: int) -> list[psutil.Process]:
    """Runner processes serving `port` (workers are not counted)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "docker_model.runner" in command and str(port) in command:
            found.append(process)
    return found


def test_a_docker_model_folder_where_the_user_stands_is_never_run(
    cli: DockerCLI, fresh_env: RunnerEnv, tmp_path: Path
) -> None:
    marker = tmp_path / "foreign-code-ran"
    project = tmp_path / "project"
    for package in ("docker_model", "docker_model/runner", "docker_model/runner/worker"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (project / "docker_model/runner/__main__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    result = subprocess.run(
        ["docker", "model", "list"], cwd=project, env=cli.environment(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), "the runner imported code from the current directory"
    (runner,) = runner_processes(fresh_env.port)
    assert runner.cwd() == "/"  # no user directory kept busy


@pytest.mark.parametrize("record", ["plain pid", "runner-like record"])
def test_a_stale_pid_file_never_gets_another_process_killed(cli: DockerCLI, fresh_env: RunnerEnv, record: str) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        fresh_env.state_dir.mkdir(parents=True)
        pid_file = fresh_env.state_dir / f"runner-{fresh_env.port}.pid"
        started = psutil.Process(stranger.pid).create_time()
        stale = {"pid": stranger.pid, "port": fresh_env.port, "started": started}
        pid_file.write_text(str(stranger.pid) if record == "plain pid" else json.dumps(stale))

        stopped = cli.run("model", "stop-runner")
        assert (stopped.returncode, stopped.stdout.strip()) == (0, "Docker Model Runner is not running")
        assert stranger.poll() is None, "stop-runner killed a process that is not the runner"

        pid_file.write_text(json.dumps(stale))
        restarted = cli.run("model", "restart-runner")
        assert restarted.returncode == 0, restarted.stderr
        assert stranger.poll() is None, "restart-runner killed a process that is not the runner"
        assert fresh_env.is_up()
        assert json.loads(pid_file.read_text())["pid"] == runner_processes(fresh_env.port)[0].pid
    finally:
        stranger.kill()
        stranger.wait()


def test_three_clis_at_once_start_one_runner_that_stop_runner_stops(cli: DockerCLI, fresh_env: RunnerEnv) -> None:
    commands = [
        subprocess.Popen(
            ["docker", "model", command], env=cli.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for command in ("list", "list", "ps")
    ]
    for command in commands:
        _, stderr = command.communicate(timeout=120)
        assert command.returncode == 0, stderr.decode()
    assert len(runner_processes(fresh_env.port)) == 1
    stopped = cli.run("model", "stop-runner")
    assert (stopped.returncode, stopped.stdout.strip()) == (0, "Docker Model Runner stopped")
    assert wait_until(lambda: not runner_processes(fresh_env.port))
    assert not fresh_env.is_up()


class NotTheRunner(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>Some other web app</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_DELETE = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_program() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotTheRunner)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("command", [["start-runner"], ["list"], ["status"], ["rm", "ai/x"]])
def test_another_program_on_the_port_is_named_not_taken_for_the_runner(
    installed_plugin: Path, fresh_env: RunnerEnv, other_program: int, command: list[str]
) -> None:
    variables = {**fresh_env.variables(), "MODEL_RUNNER_PORT": str(other_program)}
    variables["MODEL_RUNNER_HOST"] = f"http://127.0.0.1:{other_program}"
    result = DockerCLI(installed_plugin, variables).run("model", *command)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "another program, not Docker Model Runner" in line and "MODEL_RUNNER_PORT" in line
    assert "<html>" not in result.stdout + result.stderr


def test_a_runner_on_a_taken_port_says_so_in_one_line(fresh_env: RunnerEnv, other_program: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "docker_model.runner", "--port", str(other_program)],
        env={**os.environ, **fresh_env.variables(), "MODEL_RUNNER_PORT": str(other_program)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"cannot listen on 127.0.0.1:{other_program}: Address already in use; "
        "stop what uses that port or choose another with MODEL_RUNNER_PORT"
    )
    assert not (fresh_env.state_dir / f"runner-{other_program}.pid").exists()


def test_a_model_that_fails_to_load_leaves_the_loaded_one_serving(
    installed_plugin: Path, fresh_env: RunnerEnv, smollm2_gguf: Path, tmp_path: Path
) -> None:
    cli = DockerCLI(installed_plugin, {**fresh_env.variables(), "DOCKER_MODEL_MAX_LOADED_MODELS": "1"})
    assert cli.run("model", "package", "--gguf", str(smollm2_gguf), "working").returncode == 0
    broken = write_gguf(tmp_path / "broken.gguf")  # valid metadata, no usable weights
    assert cli.run("model", "package", "--gguf", str(broken), "broken").returncode == 0
    assert cli.run("model", "run", "--detach", "working").returncode == 0
    before = requests.get(f"{fresh_env.base_url}/engines/ps", timeout=10).json()
    failed = cli.run("model", "run", "broken", "hi")
    assert failed.returncode == 1
    assert "model broken failed to load" in failed.stderr
    after = requests.get(f"{fresh_env.base_url}/engines/ps", timeout=10).json()
    assert [(m["model_name"], m["pid"]) for m in after] == [(m["model_name"], m["pid"]) for m in before]
    answered = cli.run("model", "run", "working", "Say hi.")
    assert answered.returncode == 0, answered.stderr


def test_the_runner_and_its_workers_share_the_callers_session(
    installed_plugin: Path, fresh_env: RunnerEnv, smollm2_gguf: Path
) -> None:
    """Linux shares the CPU between sessions as groups: a worker in a session of its own starved on a busy
    machine (see docker_model/processes.py). Each still has a process group of its own (no Ctrl-C)."""
    cli = DockerCLI(installed_plugin, fresh_env.variables())
    assert cli.run("model", "package", "--gguf", str(smollm2_gguf), "smollm2").returncode == 0
    assert cli.run("model", "run", "--detach", "smollm2").returncode == 0
    (runner,) = runner_processes(fresh_env.port)
    (worker,) = runner.children()
    assert os.getsid(runner.pid) == os.getsid(worker.pid) == os.getsid(0)
    assert os.getpgid(runner.pid) == runner.pid and os.getpgid(worker.pid) == worker.pid


def test_a_cold_run_starts_the_runner_loading_its_model(
    cli: DockerCLI, fresh_env: RunnerEnv, smollm2_gguf: Path
) -> None:
    """The runner a `docker model run` starts launches that model's worker at once (runner/launch.py)."""
    distribution.Store(fresh_env.models_path).write_artifact(distribution.package(smollm2_gguf), tags=["ai/smollm2"])
    result = cli.run("model", "run", "ai/smollm2", "Say hi.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    (runner,) = runner_processes(fresh_env.port)
    assert "--load=ai/smollm2" in runner.cmdline()
    (worker,) = runner.children()
    assert [m["pid"] for m in requests.get(f"{fresh_env.base_url}/engines/ps", timeout=10).json()] == [worker.pid]
