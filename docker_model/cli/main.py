"""Entry point of the `docker-model` executable, as the docker CLI calls it and as users call it directly."""

from __future__ import annotations

import json
import sys
from importlib import resources

import click

from docker_model import __version__
from docker_model.cli.lazy_group import LazyCommand, LazyGroup

PLUGIN_NAME = "model"
METADATA_COMMAND = "docker-cli-plugin-metadata"

COMMANDS: dict[str, LazyCommand] = {
    "version": LazyCommand("docker_model.cli.version:version", "Show the Docker Model Runner version"),
}
ALIASES: dict[str, str] = {}


def plugin_metadata() -> dict[str, str]:
    """The Docker CLI plugin metadata of plugin-manifest/, with this package's version."""
    text = resources.files("docker_model.cli").joinpath("plugin-metadata.json").read_text()
    return {**json.loads(text), "Version": __version__}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    aliases=ALIASES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", message="docker model version %(version)s")
def cli() -> None:
    """Docker Model Runner: pull, run and serve AI models."""


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [METADATA_COMMAND]:
        print(json.dumps(plugin_metadata(), indent=2))
        return
    if args[:1] == [PLUGIN_NAME]:
        # The docker CLI runs plugins as `docker-model model <args>`: the plugin's own name comes first.
        args = args[1:]
    cli.main(args=args, prog_name="docker model")
