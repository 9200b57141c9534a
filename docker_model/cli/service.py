"""`install-runner`, `uninstall-runner`, `reinstall-runner`: the runner as a per-user service started at login,
a systemd user unit on Linux and a launchd agent on macOS.

The service runs the runner as the CLI starts it (`runner_process.command`: this Python, isolated, from `/`),
with the runner's settings of the environment it was installed from, and appends to the log `docker model
logs` reads. Without a service manager to talk to, the file is written and the command says how to start
it; `start-runner` works with or without a service.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import click

from docker_model import runner_pid, settings
from docker_model.cli import runner_process
from docker_model.cli.status import with_listen_options
from docker_model.files import PRIVATE_FILE, atomic_write, make_dirs

NAME = "docker-model-runner"  # the systemd unit's name and the launchd agent's label
# The runner's settings a service carries from the environment it is installed from (the CLI-side ones, such as
# MODEL_RUNNER_HOST and MODEL_RUNNER_TOKEN, and secrets such as HF_TOKEN, stay out of the file).
CARRIED = ("MODELS_PATH", "DOCKER_CONFIG", "MODEL_RUNNER_BIND", "HF_ENDPOINT", "DMR_ORIGINS")
CARRIED_PREFIX = "DOCKER_MODEL_"
OTHER_GPUS = ("rocm", "musa", "cann")  # Docker Model Runner's other --gpu values: engines this runner lacks


@dataclass(frozen=True)
class Service:
    """What the service runs, with which settings, logging where."""

    command: list[str]
    environment: dict[str, str]
    log: Path


def service_for(port: int, host: str | None, gpu: str | None) -> Service:
    environment = {
        name: value
        for name, value in sorted(os.environ.items())
        if (name in CARRIED or name.startswith(CARRIED_PREFIX)) and value
    }
    if gpu is not None:
        environment["DOCKER_MODEL_GPU"] = gpu
    # The store and the state folder as this shell resolves them: their defaults come from XDG_DATA_HOME and
    # XDG_STATE_HOME, which a service manager's environment may lack, and the service starts from `/`.
    environment["MODELS_PATH"] = os.path.abspath(settings.models_path())
    environment["DOCKER_MODEL_STATE_DIR"] = os.path.abspath(settings.state_dir())
    return Service(runner_process.command(port, host=host), environment, runner_process.log_path(port))


def systemd_quoted(value: str) -> str:
    """One word of a unit file's line: double-quoted, with systemd's escapes and `%` specifiers taken literally."""
    if "\n" in value or "\r" in value:
        raise click.ClickException(f"a service cannot carry a line break: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def systemd_path(path: Path) -> str:
    """A path as `StandardOutput=append:` takes it: literally, to the end of the line, `%` specifiers aside."""
    text = str(path)
    if any(c in text for c in '\\"') or text != text.strip() or not text.isprintable():
        raise click.ClickException(
            f"a systemd unit cannot log to {text!r} (a backslash, a quote, a control character or spaces at an "
            "end): set DOCKER_MODEL_STATE_DIR to a plainer folder"
        )
    return text.replace("%", "%%")


def systemd_unit(service: Service) -> str:
    """The systemd user unit; `$` in the command is written `$$`, since ExecStart= expands variables."""
    command = " ".join(systemd_quoted(word).replace("$", "$$") for word in service.command)
    environment = "".join(
        f"Environment={systemd_quoted(f'{name}={value}')}\n" for name, value in service.environment.items()
    )
    log = systemd_path(service.log)
    return (
        "[Unit]\n"
        "Description=Docker Model Runner (docker model)\n"
        "\n"
        "[Service]\n"
        f"ExecStart={command}\n"
        f"WorkingDirectory={runner_process.NEUTRAL_DIRECTORY}\n"
        f"{environment}"
        f"StandardOutput=append:{log}\n"
        "StandardError=inherit\n"
        "KillMode=mixed\n"  # SIGTERM to the runner, which stops its workers; what is left after that is killed
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def launchd_plist(service: Service) -> bytes:
    """The launchd agent: started at login, restarted when it fails (not after `stop-runner`)."""
    return plistlib.dumps(
        {
            "Label": NAME,
            "ProgramArguments": service.command,
            "WorkingDirectory": runner_process.NEUTRAL_DIRECTORY,
            "EnvironmentVariables": service.environment,
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "StandardOutPath": str(service.log),
            "StandardErrorPath": str(service.log),
        }
    )


def manager_call(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(argv, 1, "", str(error))


class Manager(ABC):
    """A platform's service manager: where the file goes, what it holds, how it is started and stopped."""

    @abstractmethod
    def path(self) -> Path: ...

    @abstractmethod
    def contents(self, service: Service) -> bytes: ...

    @abstractmethod
    def reachable(self) -> bool:
        """Whether this user's service manager answers (it does not in a container, nor over some SSH logins)."""

    @abstractmethod
    def start(self) -> list[list[str]]:
        """The commands that start the service now and at each login, its file written."""

    @abstractmethod
    def stop(self) -> list[list[str]]:
        """The commands that stop the service and keep it from starting at login, before its file goes."""

    def forget(self) -> list[list[str]]:
        """The commands that make the manager forget the file just removed."""
        return []

    @abstractmethod
    def active(self) -> bool:
        """Whether the manager has the service started (launchd: loaded), so that starting it again is not needed."""

    @abstractmethod
    def running_pid(self) -> int | None:
        """The pid of the service's runner when the manager runs it now; None when it does not."""

    @abstractmethod
    def how_to_start(self) -> str: ...


class Systemd(Manager):
    def path(self) -> Path:
        import platformdirs

        return platformdirs.user_config_path() / "systemd" / "user" / f"{NAME}.service"  # XDG_CONFIG_HOME first

    def contents(self, service: Service) -> bytes:
        return systemd_unit(service).encode()

    def reachable(self) -> bool:
        return (
            shutil.which("systemctl") is not None
            and manager_call(["systemctl", "--user", "show-environment"]).returncode == 0
        )

    def start(self) -> list[list[str]]:
        return [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", f"{NAME}.service"]]

    def stop(self) -> list[list[str]]:
        return [["systemctl", "--user", "disable", "--now", f"{NAME}.service"]]

    def forget(self) -> list[list[str]]:
        return [["systemctl", "--user", "daemon-reload"]]

    def active(self) -> bool:
        return manager_call(["systemctl", "--user", "is-active", "--quiet", f"{NAME}.service"]).returncode == 0

    def running_pid(self) -> int | None:
        shown = manager_call(["systemctl", "--user", "show", "--property=MainPID", "--value", f"{NAME}.service"])
        pid = shown.stdout.strip()
        return int(pid) if shown.returncode == 0 and pid.isdigit() and int(pid) > 0 else None

    def how_to_start(self) -> str:
        return f"systemctl --user daemon-reload && systemctl --user enable --now {NAME}"


class Launchd(Manager):
    def path(self) -> Path:
        return Path.home() / "Library" / "LaunchAgents" / f"{NAME}.plist"

    def contents(self, service: Service) -> bytes:
        return launchd_plist(service)

    def reachable(self) -> bool:
        return shutil.which("launchctl") is not None

    def start(self) -> list[list[str]]:
        return [["launchctl", "bootstrap", f"gui/{os.getuid()}", str(self.path())]]

    def stop(self) -> list[list[str]]:
        return [["launchctl", "bootout", f"gui/{os.getuid()}/{NAME}"]]

    def active(self) -> bool:
        return manager_call(["launchctl", "print", f"gui/{os.getuid()}/{NAME}"]).returncode == 0

    def running_pid(self) -> int | None:
        """From `launchctl print`'s `pid = N` line; an agent loaded but not running has none."""
        shown = manager_call(["launchctl", "print", f"gui/{os.getuid()}/{NAME}"])
        for line in shown.stdout.splitlines() if shown.returncode == 0 else []:
            key, _, value = line.strip().partition(" = ")
            if key == "pid" and value.isdigit():
                return int(value)
        return None

    def how_to_start(self) -> str:
        return f"launchctl bootstrap gui/$(id -u) {self.path()}"


def manager() -> Manager:
    if sys.platform == "linux":
        return Systemd()
    if sys.platform == "darwin":
        return Launchd()
    raise click.ClickException(
        f"install-runner knows Linux (systemd) and macOS (launchd), not {sys.platform}: use `docker model start-runner`"
    )


def check_gpu(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or value in settings.GPU_MODES:
        return value
    if value in OTHER_GPUS:
        raise click.BadParameter(f"{value!r}: this runner's engine (llama.cpp) runs on CUDA, Metal or the CPU")
    raise click.BadParameter(f"{value!r} is not one of {', '.join(settings.GPU_MODES)}")


gpu_option = click.option(
    "--gpu",
    callback=check_gpu,
    help="auto (what the machine and the engine's build offer), none (CPU only), cuda or metal "
    "(default: DOCKER_MODEL_GPU, else auto)",
)


def run_all(commands: list[list[str]]) -> str | None:
    """Run the manager's commands in order; the first failure's message, or None."""
    for argv in commands:
        result = manager_call(argv)
        if result.returncode != 0:
            return f"`{' '.join(argv)}` failed: {(result.stderr or result.stdout).strip()}"
    return None


def install(port: int | None, host: str | None, gpu: str | None) -> None:
    chosen = manager()
    port = port if port is not None else settings.runner_port()
    service = service_for(port, host, gpu)
    path, contents = chosen.path(), chosen.contents(service)
    path_was_there = path.exists()
    if not path_was_there:
        try:
            make_dirs(path.parent)
            make_dirs(service.log.parent)  # the service appends to its log there
            atomic_write(path, contents, mode=PRIVATE_FILE)
        except OSError as error:
            raise click.ClickException(f"cannot write {error.filename or path}: {error.strerror or error}") from None
        click.echo(f"Wrote {path}")
    elif path.read_bytes() == contents:
        click.echo(f"The runner's service is already installed: {path}")
    else:
        raise click.ClickException(
            f"the runner's service is installed with other settings ({path}): "
            "`docker model reinstall-runner` with the options you want replaces it"
        )
    if not chosen.reachable():
        click.echo(
            "The service manager is not running for this user here, so nothing was started: once it is, "
            f"`{chosen.how_to_start()}` starts the runner now and at each login "
            "(meanwhile `docker model start-runner` starts it)"
        )
        return
    if path_was_there and chosen.active():
        click.echo(f"Its service manager has it already: it runs at each login, on port {port}")
        return
    record = runner_pid.live_runner(port)
    # The service takes over from a runner the CLI started; one the service runs itself is left alone.
    if record is not None and record.pid != chosen.running_pid() and runner_process.stop(port):
        click.echo("Stopped the runner the CLI had started; the service runs it now")
    failure = run_all(chosen.start())
    if failure:
        raise click.ClickException(f"{failure}; the file is written: fix the problem, then `{chosen.how_to_start()}`")
    click.echo(f"Docker Model Runner is installed as a service: it runs now and at each login, on port {port}")


def uninstall() -> None:
    chosen = manager()
    path = chosen.path()
    if not path.exists():
        click.echo(f"The runner's service is not installed (no {path})")
        return
    reachable = chosen.reachable()
    failure = run_all(chosen.stop()) if reachable else None
    if failure:  # not running, say; if it runs, `docker model stop-runner` still stops it
        click.echo(f"Warning: {failure}", err=True)
    try:
        path.unlink()
    except OSError as error:
        raise click.ClickException(f"cannot remove {path}: {error.strerror or error}") from None
    failure = run_all(chosen.forget()) if reachable else None
    if failure:
        click.echo(f"Warning: {failure}", err=True)
    click.echo(f"Removed {path}: the runner no longer starts at login (the models stay)")


@click.command(name="install-runner")
@with_listen_options
@gpu_option
def install_runner(host: str | None, port: int | None, gpu: str | None) -> None:
    """Install the runner as a service of this user that starts at login (systemd on Linux, launchd on macOS)."""
    install(port, host, gpu)


@click.command(name="uninstall-runner")
def uninstall_runner() -> None:
    """Stop the runner's service and remove it; the models stay."""
    uninstall()


@click.command(name="reinstall-runner")
@with_listen_options
@gpu_option
def reinstall_runner(host: str | None, port: int | None, gpu: str | None) -> None:
    """Replace the runner's service, with these options."""
    uninstall()
    install(port, host, gpu)
