"""`docker model logs [-f]`: the runner's log, read from its log file on this machine."""

from __future__ import annotations

import sys
import time

import click

from docker_model.cli import runner_process
from docker_model.cli.client import RunnerClient

FOLLOW_POLL_SECONDS = 0.25


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as the runner writes them")
def logs(follow: bool) -> None:
    """Show the runner's logs."""
    port = runner_process.runner_port_of(RunnerClient().base_url)
    if port is None:
        raise click.ClickException("the runner is not on this machine: its logs are where it runs")
    path = runner_process.log_path(port)
    if not path.exists():
        raise click.ClickException(f"no runner log yet at {path}: the runner has not been started on this port")
    with open(path, errors="replace") as log:
        sys.stdout.write(log.read())
        while follow:
            try:
                line = log.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(FOLLOW_POLL_SECONDS)
            except KeyboardInterrupt:
                return
