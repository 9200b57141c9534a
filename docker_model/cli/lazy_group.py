"""A click group whose commands are imported only when they run, so `docker model --help` starts fast."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives ("module:attribute") and the one-line help shown in the command list."""

    target: str
    short_help: str
    hidden: bool = False


class LazyGroup(click.Group):
    """Lists commands from a registry of help strings and imports a command's module only when it is used."""

    def __init__(self, *args, lazy_commands: dict[str, LazyCommand], aliases: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands
        self.aliases = aliases

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, command in self.lazy_commands.items() if not command.hidden)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = self.aliases.get(cmd_name, cmd_name)
        entry = self.lazy_commands.get(name)
        if entry is None:
            return None
        module_name, attribute = entry.target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        command.name = name
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy_commands[name].short_help) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
