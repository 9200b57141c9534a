"""Entry point of the `docker-model` executable, as the docker CLI calls it and as users call it directly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from docker_model import __version__
from docker_model.cli.lazy_group import LazyCommand, LazyGroup
from docker_model.reference import InvalidReferenceError
from docker_model.settings import SettingsError

PLUGIN_NAME = "model"
METADATA_COMMAND = "docker-cli-plugin-metadata"

COMMANDS: dict[str, LazyCommand] = {
    "pull": LazyCommand("docker_model.cli.transfer:pull", "Pull a model from Docker Hub or another registry"),
    "push": LazyCommand("docker_model.cli.transfer:push", "Push a model to a registry"),
    "list": LazyCommand("docker_model.cli.listing:list_models", "List the models pulled to your local environment"),
    "inspect": LazyCommand("docker_model.cli.listing:inspect", "Display detailed information on one model"),
    "df": LazyCommand("docker_model.cli.listing:df", "Show the disk used by models and the inference engine"),
    "ps": LazyCommand("docker_model.cli.listing:ps", "List the models loaded in memory"),
    "show": LazyCommand("docker_model.cli.sizing:show", "Show a model's facts and how it fits in memory"),
    "run": LazyCommand("docker_model.cli.run:run", "Run a model and answer a prompt, or chat with it"),
    "logs": LazyCommand("docker_model.cli.logs:logs", "Show the runner's logs"),
    "requests": LazyCommand("docker_model.cli.requests:requests", "Show recent requests to models and their responses"),
    "bench": LazyCommand("docker_model.cli.bench:bench", "Measure a model's speed at several concurrencies"),
    "package": LazyCommand("docker_model.cli.package:package", "Package a GGUF file into a model artifact"),
    "rm": LazyCommand("docker_model.cli.manage:rm", "Remove local models"),
    "purge": LazyCommand("docker_model.cli.manage:purge", "Remove every model from the local store"),
    "prune": LazyCommand("docker_model.cli.housekeeping:prune", "Remove models not used for a while"),
    "save": LazyCommand("docker_model.cli.housekeeping:save", "Save a model to a file, to load it elsewhere"),
    "load": LazyCommand("docker_model.cli.housekeeping:load", "Load a model from a file that save wrote"),
    "check": LazyCommand("docker_model.cli.housekeeping:check", "Verify the model store, and repair it"),
    "tag": LazyCommand("docker_model.cli.manage:tag", "Tag a model"),
    "unload": LazyCommand("docker_model.cli.manage:unload", "Unload models from memory"),
    "configure": LazyCommand("docker_model.cli.manage:configure", "Configure a model's runtime settings"),
    "status": LazyCommand("docker_model.cli.status:status", "Check whether Docker Model Runner is running"),
    "console": LazyCommand("docker_model.cli.console:console", "Open the web console in the browser"),
    "start-runner": LazyCommand("docker_model.cli.status:start_runner", "Start the runner in the background"),
    "stop-runner": LazyCommand("docker_model.cli.status:stop_runner", "Stop the runner"),
    "restart-runner": LazyCommand("docker_model.cli.status:restart_runner", "Restart the runner"),
    "version": LazyCommand("docker_model.cli.version:version", "Show the Docker Model Runner version"),
    "search": LazyCommand("docker_model.cli.search:search", "Search for models on Docker Hub and Hugging Face"),
    "context": LazyCommand("docker_model.cli.context:context", "Manage runner contexts (runners on other machines)"),
    "generate": LazyCommand("docker_model.cli.kube:generate", "Generate deployment files (Kubernetes manifests)"),
    "rpc-server": LazyCommand("docker_model.cli.rpc_server:rpc_server", "Serve this machine's devices to a runner"),
    "install-runner": LazyCommand("docker_model.cli.service:install_runner", "Install the runner as a login service"),
    "uninstall-runner": LazyCommand("docker_model.cli.service:uninstall_runner", "Remove the runner's login service"),
    "reinstall-runner": LazyCommand("docker_model.cli.service:reinstall_runner", "Replace the runner's login service"),
    "compose": LazyCommand("docker_model.cli.compose:compose", "Docker Compose's provider protocol", hidden=True),
}
ALIASES: dict[str, str] = {"ls": "list", "stop": "unload"}


def plugin_metadata() -> dict[str, str]:
    """The Docker CLI plugin metadata of plugin-manifest/, with this package's version."""
    text = Path(__file__).with_name("plugin-metadata.json").read_text()
    return {**json.loads(text), "Version": __version__}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    aliases=ALIASES,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
@click.version_option(__version__, "--version", message="docker model version %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Docker Model Runner: pull, run and serve AI models."""
    if ctx.invoked_subcommand is None:  # `docker model` alone: help, and success, as `docker` does
        click.echo(ctx.get_help())


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [METADATA_COMMAND]:
        print(json.dumps(plugin_metadata(), indent=2))
        return
    if args[:1] == [PLUGIN_NAME]:
        # The docker CLI runs plugins as `docker-model model <args>`: the plugin's own name comes first.
        args = args[1:]
    try:
        cli.main(args=args, prog_name="docker model", standalone_mode=True)
    except (SettingsError, InvalidReferenceError) as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
    except Exception as error:  # a bug or an answer no command expected: one line, never a traceback
        from docker_model.cli.render import safe_for_terminal  # its text may come from a server

        click.echo(f"Error: unexpected {type(error).__name__}: {safe_for_terminal(str(error))}", err=True)
        sys.exit(1)
