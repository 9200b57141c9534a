"""`docker model logs [-f] [--no-engines]`: the runner's log and its engines' (one per model's worker), read
from their files on this machine. Each file's lines come under a `==> FILE <==` header, as `tail` shows
several files, once there is more than the runner's log to show."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import click

from docker_model import settings
from docker_model.cli import runner_process
from docker_model.cli.client import RunnerClient
from docker_model.cli.status import local_port

FOLLOW_POLL_SECONDS = 0.25


def engine_logs() -> list[Path]:
    """The engines' logs, oldest first: where the runner's workers write (`runner/launch.py`, `log_dir`)."""
    found = (settings.state_dir() / "logs").glob("model-*.log")
    return sorted(found, key=lambda path: (path.stat().st_mtime, path.name))


class LogPrinter:
    """Prints the new text of several log files, each under a header when the file changes."""

    def __init__(self, runner_log: TextIO, with_engines: bool) -> None:
        self.files: dict[Path, TextIO] = {Path(runner_log.name): runner_log}
        self.with_engines = with_engines
        self.headers = False
        self.last: Path | None = None

    def add_engine_logs(self) -> None:
        if not self.with_engines:
            return
        for path in engine_logs():
            if path not in self.files:
                self.files[path] = open(path, errors="replace")  # noqa: SIM115 - closed in close()
                self.headers = True

    def print_new(self) -> bool:
        """Print what was written since the last call; True if there was anything."""
        printed = False
        for path, file in self.files.items():
            text = file.read()
            if not text:
                continue
            if self.headers and path != self.last:
                sys.stdout.write(("" if self.last is None else "\n") + f"==> {path} <==\n")
            self.last = path
            sys.stdout.write(text)
            printed = True
        sys.stdout.flush()
        return printed

    def close(self) -> None:
        for file in self.files.values():
            file.close()


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as the runner writes them")
@click.option("--no-engines", is_flag=True, help="Show only the runner's log, not its inference engines'")
def logs(follow: bool, no_engines: bool) -> None:
    """Show the runner's logs."""
    port = local_port(RunnerClient(), "its logs are where it runs")
    path = runner_process.log_path(port)
    if not path.exists():
        raise click.ClickException(f"no runner log yet at {path}: the runner has not been started on this port")
    printer = LogPrinter(open(path, errors="replace"), with_engines=not no_engines)  # noqa: SIM115
    try:
        printer.add_engine_logs()
        printer.print_new()
        while follow:
            printer.add_engine_logs()  # a model loaded since starts a log of its own
            if not printer.print_new():
                time.sleep(FOLLOW_POLL_SECONDS)
    except KeyboardInterrupt:
        return
    finally:
        printer.close()
