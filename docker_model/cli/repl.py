"""The interactive chat of `docker model run MODEL`: history across turns, a few slash commands."""

from __future__ import annotations

import contextlib

import click

from docker_model.cli.chat_stream import print_reply, stream_chat
from docker_model.cli.client import RunnerClient

PROMPT = "> "
CONTINUATION = "... "
FENCE = '"""'
EXIT_HINT = "Use Ctrl + d or /bye to exit."
PARAMETERS = {"max_tokens": int, "temperature": float, "top_p": float, "top_k": int, "seed": int}
HELP = f"""Available commands:
  /set system <text>              Set the system message
  /set parameter <name> <value>   Set a sampling parameter: {", ".join(PARAMETERS)}
  /clear                          Forget the conversation so far
  /bye, /exit                     Exit
  /?, /help                       Show this help

Use {FENCE} to begin and end a multi-line message."""


class Conversation:
    def __init__(self) -> None:
        self.system: str | None = None
        self.turns: list[dict] = []
        self.options: dict[str, int | float] = {}

    def messages(self, user_text: str) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self.turns, {"role": "user", "content": user_text}]

    def record(self, user_text: str, answer: str) -> None:
        self.turns += [{"role": "user", "content": user_text}, {"role": "assistant", "content": answer}]


def read_message() -> str | None:
    """One message from the terminal, `\"\"\"`-fenced ones across lines; None at end of input (Ctrl-D)."""
    try:
        line = input(PROMPT)
    except EOFError:
        return None
    if not line.lstrip().startswith(FENCE):
        return line
    text = line.lstrip()[len(FENCE) :]
    lines = []
    while not text.rstrip().endswith(FENCE):
        lines.append(text)
        try:
            text = input(CONTINUATION)
        except EOFError:
            return None
    lines.append(text.rstrip()[: -len(FENCE)])
    return "\n".join(lines).strip("\n")


def handle_command(line: str, conversation: Conversation) -> bool:
    """Run a slash command; returns False when the chat should end."""
    command, _, argument = line.strip().partition(" ")
    if command in ("/bye", "/exit"):
        return False
    if command in ("/?", "/help"):
        click.echo(HELP)
    elif command == "/clear":
        conversation.turns.clear()
        click.echo("Cleared the conversation.")
    elif command == "/set" and argument.startswith("system"):
        conversation.system = argument.removeprefix("system").strip() or None
        click.echo("Set the system message." if conversation.system else "Cleared the system message.")
    elif command == "/set" and argument.startswith("parameter"):
        set_parameter(argument.removeprefix("parameter").split(), conversation)
    else:
        click.echo(f"Unknown command '{command}'. Type /? for help.")
    return True


def set_parameter(words: list[str], conversation: Conversation) -> None:
    if len(words) != 2 or words[0] not in PARAMETERS:
        click.echo(f"Usage: /set parameter <name> <value>, with a name among {', '.join(PARAMETERS)}")
        return
    name, value = words
    try:
        conversation.options[name] = PARAMETERS[name](value)
    except ValueError:
        click.echo(f"'{value}' is not a valid value for {name}")
        return
    click.echo(f"Set parameter '{name}' to '{value}'")


def chat(client: RunnerClient, model: str, markdown: bool, debug: bool) -> None:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()

    conversation = Conversation()
    while True:
        try:
            text = read_message()
        except KeyboardInterrupt:
            click.echo(f"\n{EXIT_HINT}")
            continue
        if text is None:
            click.echo()
            return
        if not text.strip():
            continue
        if text.startswith("/") and not text.startswith("//"):
            if not handle_command(text, conversation):
                return
            continue
        pieces = stream_chat(client, model, conversation.messages(text), debug, conversation.options)
        try:
            answer = print_reply(pieces, markdown)
        except KeyboardInterrupt:
            pieces.close()
            click.echo("\n(reply cancelled)")
            continue
        conversation.record(text, answer)
