"""`install-runner`, `uninstall-runner`, `reinstall-runner`: the runner as a login service. Through the real
docker CLI with HOME and XDG_CONFIG_HOME in a temporary folder. No systemd user manager runs in this sandbox,
so the commands write the unit and say how to start it; what can run here does: `systemd-analyze verify`
checks the unit, its command line starts a real runner, and `start-runner` works beside it. The launchd
agent is generated here too and read back with plistlib."""

from __future__ import annotations

import contextlib
import os
import plistlib
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from docker_model import runner_pid, settings
from docker_model.cli import runner_process
from docker_model.cli.main import cli as model_cli
from docker_model.cli.service import NAME, Service, launchd_plist, service_for, systemd_quoted, systemd_unit
from docker_model.runner.accelerator import Probes, detect
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.registry import free_port
from tests.fixtures.runner import RunnerEnv, make_runner_env

UNIT = Path("systemd/user/docker-model-runner.service")


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.fixture
def cli(installed_plugin: Path, tmp_path_factory: pytest.TempPathFactory, home: dict[str, str]) -> DockerCLI:
    env = make_runner_env(tmp_path_factory)
    return DockerCLI(installed_plugin, {**env.variables(), **home})


def unit_of(cli: DockerCLI) -> Path:
    return Path(cli.env["XDG_CONFIG_HOME"]) / UNIT


def systemd_analyze_verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify --user`, given a runtime folder (no user session here provides one)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return subprocess.run(
        ["systemd-analyze", "verify", "--user", str(unit)],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
def test_install_writes_a_unit_systemd_accepts(cli: DockerCLI, tmp_path: Path) -> None:
    port = cli.env["MODEL_RUNNER_PORT"]
    installed = cli.run("model", "install-runner", "--port", port, "--gpu", "none")
    assert installed.returncode == 0, installed.stderr
    unit = unit_of(cli)
    assert installed.stdout.splitlines()[0] == f"Wrote {unit}"
    assert "systemctl --user daemon-reload && systemctl --user enable --now docker-model-runner" in installed.stdout
    assert stat.S_IMODE(unit.stat().st_mode) == 0o600
    text = unit.read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    command = shlex.split(exec_start.removeprefix("ExecStart="))
    assert command[1:] == runner_process.command(int(port))[1:]  # isolated mode, the runner module, its port
    assert Path(command[0]).parent == Path(sys.executable).parent  # the plugin's own Python
    assert "WorkingDirectory=/\n" in text
    for line in (
        'Environment="DOCKER_MODEL_GPU=none"',
        f'Environment="MODELS_PATH={cli.env["MODELS_PATH"]}"',
        f'Environment="DOCKER_MODEL_STATE_DIR={cli.env["DOCKER_MODEL_STATE_DIR"]}"',
        f"StandardOutput=append:{cli.env['DOCKER_MODEL_STATE_DIR']}/runner-{port}.log",  # `docker model logs`
        "WantedBy=default.target",
    ):
        assert line in text.splitlines()
    assert "MODEL_RUNNER_HOST" not in text  # the CLI's settings stay out
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    verified = systemd_analyze_verify(unit, tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert str(unit) not in verified.stderr, verified.stderr  # no warning about any line of it
    system = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert system.returncode == 0 and str(unit) not in system.stderr, system.stderr


@pytest.mark.integration
def test_the_units_command_runs_the_runner(cli: DockerCLI, tmp_path: Path) -> None:
    """What systemd would start, started here as systemd would (its command, environment and folder)."""
    port = str(free_port())
    assert cli.run("model", "install-runner", "--port", port).returncode == 0
    lines = unit_of(cli).read_text().splitlines()
    command = shlex.split(next(line for line in lines if line.startswith("ExecStart=")).removeprefix("ExecStart="))
    environment = dict(
        shlex.split(line.removeprefix("Environment="))[0].split("=", 1)
        for line in lines
        if line.startswith("Environment=")
    )
    runner = subprocess.Popen(command, cwd="/", env={"PATH": os.environ["PATH"], **environment})
    env = RunnerEnv(int(port), Path(environment["MODELS_PATH"]), Path(environment["DOCKER_MODEL_STATE_DIR"]))
    try:
        status = DockerCLI(cli.docker_config, {**cli.env, **env.variables()})
        for _ in range(600):
            if env.is_up() or runner.poll() is not None:
                break
            time.sleep(0.1)
        assert env.is_up(), f"the unit's runner did not start (exit {runner.poll()})"
        answer = status.run("model", "status")
        assert answer.returncode == 0 and "Docker Model Runner is running" in answer.stdout, answer.stderr
    finally:
        runner.terminate()
        runner.wait(timeout=30)


@pytest.mark.integration
def test_install_again_reinstall_and_uninstall(cli: DockerCLI) -> None:
    port = cli.env["MODEL_RUNNER_PORT"]
    unit = unit_of(cli)
    assert cli.run("model", "install-runner", "--port", port).returncode == 0
    again = cli.run("model", "install-runner", "--port", port)
    assert (again.returncode, again.stdout.splitlines()[0]) == (0, f"The runner's service is already installed: {unit}")
    other = cli.run("model", "install-runner", "--port", port, "--host", "0.0.0.0")
    assert other.returncode == 1 and "`docker model reinstall-runner`" in other.stderr
    assert "--host" not in unit.read_text()  # the installed one is left as it was
    replaced = cli.run("model", "reinstall-runner", "--port", port, "--host", "0.0.0.0", "--gpu", "cuda")
    assert replaced.returncode == 0, replaced.stderr
    assert '"--host=0.0.0.0"' in unit.read_text() and 'Environment="DOCKER_MODEL_GPU=cuda"' in unit.read_text()
    removed = cli.run("model", "uninstall-runner")
    assert (removed.returncode, removed.stdout.strip()) == (
        0,
        f"Removed {unit}: the runner no longer starts at login (the models stay)",
    )
    assert not unit.exists()
    gone = cli.run("model", "uninstall-runner")
    assert gone.stdout.strip() == f"The runner's service is not installed (no {unit})"


@pytest.mark.integration
def test_start_runner_works_beside_an_installed_unit(cli: DockerCLI) -> None:
    assert cli.run("model", "install-runner").returncode == 0
    try:
        started = cli.run("model", "start-runner")
        assert started.returncode == 0, started.stderr
        assert cli.run("model", "status").returncode == 0
    finally:
        cli.run("model", "stop-runner")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("gpu", "problem"),
    [("rocm", "'rocm': this runner's engine (llama.cpp) runs on CUDA, Metal or the CPU"), ("tpu", "'tpu' is not one")],
)
def test_a_gpu_it_cannot_honour_is_refused(cli: DockerCLI, gpu: str, problem: str) -> None:
    result = cli.run("model", "install-runner", "--gpu", gpu)
    assert result.returncode == 2 and problem in result.stderr
    assert not unit_of(cli).exists()


SERVICE = Service(
    ["/opt/dm/bin/python", "-I", "-u", "-m", "docker_model.runner", "--port", "12434", "--host=172.17.0.1"],
    {"MODELS_PATH": "/Users/me/models 100%", "DOCKER_MODEL_GPU": "metal"},
    Path("/Users/me/state/runner-12434.log"),
)


def test_the_launchd_agent_runs_the_runner_at_login() -> None:
    agent = plistlib.loads(launchd_plist(SERVICE))
    assert agent == {
        "Label": "docker-model-runner",
        "ProgramArguments": SERVICE.command,
        "WorkingDirectory": "/",
        "EnvironmentVariables": SERVICE.environment,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "StandardOutPath": "/Users/me/state/runner-12434.log",
        "StandardErrorPath": "/Users/me/state/runner-12434.log",
    }


def test_unit_values_are_escaped_for_systemd() -> None:
    unit = systemd_unit(Service(["/a b/py$thon", 'say "%h"'], {"X": "100%"}, Path("/l%og")))
    assert 'ExecStart="/a b/py$$thon" "say \\"%%h\\""\n' in unit
    assert 'Environment="X=100%%"\n' in unit
    assert "StandardOutput=append:/l%%og\n" in unit
    with pytest.raises(Exception, match="line break"):
        systemd_quoted("two\nlines")


@pytest.mark.parametrize("log", ["/a\\b/runner.log", '/a"b/runner.log', "/state /runner.log ", "/a\tb/runner.log"])
def test_a_log_path_systemd_would_read_otherwise_is_refused(log: str) -> None:
    """`StandardOutput=append:` takes the rest of its line literally (only `%` is special): no escapes."""
    with pytest.raises(click.ClickException, match=r"a systemd unit cannot log to .*: set DOCKER_MODEL_STATE_DIR"):
        systemd_unit(Service(["/bin/true"], {}, Path(log)))


def test_the_service_carries_the_store_and_state_this_shell_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user manager may lack XDG_DATA_HOME and XDG_STATE_HOME: the unit names the folders they give here."""
    for name in ("MODELS_PATH", "DOCKER_MODEL_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    environment = service_for(12434, None, None).environment
    assert environment["MODELS_PATH"] == str(settings.models_path())
    assert environment["MODELS_PATH"].startswith(str(tmp_path / "data"))
    assert environment["DOCKER_MODEL_STATE_DIR"] == str(settings.state_dir())
    assert environment["DOCKER_MODEL_STATE_DIR"].startswith(str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELS_PATH", "models")  # the service starts in `/`: a relative folder is made whole
    assert service_for(12434, None, None).environment["MODELS_PATH"] == str(tmp_path / "models")


FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$FAKE_SYSTEMCTL_LOG"
case "$*" in
  *is-active*) exit "$FAKE_ACTIVE" ;;
  *MainPID*) echo "$FAKE_MAIN_PID" ;;
esac
exit 0
"""


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A systemd user manager that answers (a script standing in for `systemctl`); the log of what it was told."""
    if sys.platform != "linux":
        pytest.skip("systemd is Linux's")
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "systemctl").write_text(FAKE_SYSTEMCTL)
    (folder / "systemctl").chmod(0o755)
    log = tmp_path / "systemctl.log"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(log))
    for name, value in {"HOME": "home", "XDG_CONFIG_HOME": "config", "DOCKER_MODEL_STATE_DIR": "state"}.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    monkeypatch.setenv("MODELS_PATH", str(tmp_path / "models"))
    return log


@contextlib.contextmanager
def a_runner_of_the_cli(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A process the pid file names as the runner of `port` (what `stop` checks: its start time, its module)."""
    code = "import sys, time; from docker_model import runner_pid; runner_pid.write_pid_file(int(sys.argv[1]));"
    code += " print(flush=True); time.sleep(60)"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(port), runner_pid.RUNNER_MODULE], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"\n"
        yield process
    finally:
        process.kill()
        process.wait()


def install_runner(port: int, active: bool, main_pid: int) -> Result:
    env = {"FAKE_ACTIVE": "0" if active else "3", "FAKE_MAIN_PID": str(main_pid)}
    return CliRunner().invoke(model_cli, ["install-runner", "--port", str(port)], env=env)


def test_installing_again_leaves_the_services_runner_alone(systemctl: Path) -> None:
    port = free_port()
    with a_runner_of_the_cli(port) as runner:
        first = install_runner(port, active=False, main_pid=0)  # the service takes over from the CLI's runner
        assert first.exit_code == 0, first.output
        assert "Stopped the runner the CLI had started; the service runs it now" in first.stdout
        assert runner.wait(timeout=30) is not None
    assert f"--user enable --now {NAME}.service" in systemctl.read_text()

    with a_runner_of_the_cli(port) as runner:  # now the service's runner
        systemctl.unlink()
        again = install_runner(port, active=True, main_pid=runner.pid)
        assert again.exit_code == 0, again.output
        assert again.stdout.splitlines()[1:] == [
            f"Its service manager has it already: it runs at each login, on port {port}"
        ]
        assert "enable" not in systemctl.read_text()
        restarting = install_runner(port, active=False, main_pid=runner.pid)  # its manager restarts it, say
        assert restarting.exit_code == 0, restarting.output
        assert "Stopped" not in restarting.stdout
        assert runner.poll() is None


def probes(gpus: list[str], engine: set[str]) -> Probes:
    return Probes(nvidia_gpus=lambda: gpus, apple_silicon=lambda: False, engine_gpu_libraries=lambda: engine)


def test_the_gpu_setting_reaches_the_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda_machine = probes(["NVIDIA L4"], {"cuda"})
    monkeypatch.setenv("DOCKER_MODEL_GPU", "none")
    assert (detect(cuda_machine).kind, detect(cuda_machine).detail) == ("cpu", "CPU (DOCKER_MODEL_GPU=none)")
    monkeypatch.setenv("DOCKER_MODEL_GPU", "cuda")
    assert detect(cuda_machine).kind == "cuda"
    without = detect(probes([], set()))
    assert without.kind == "cpu"
    assert without.problem == "DOCKER_MODEL_GPU=cuda, but no NVIDIA GPU was found: running on the CPU"
    monkeypatch.setenv("DOCKER_MODEL_GPU", "metal")
    assert "DOCKER_MODEL_GPU=metal, but this is not an Apple Silicon Mac" in (detect(probes([], set())).problem or "")


def test_a_bad_gpu_setting_stops_the_runner_with_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DOCKER_MODEL_GPU": "rocm",
        "DOCKER_MODEL_STATE_DIR": str(tmp_path),
        "MODELS_PATH": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "docker_model.runner", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("DOCKER_MODEL_GPU must be auto, none, cuda or metal, not 'rocm': fix or unset it")
    )
    assert "Traceback" not in result.stderr
