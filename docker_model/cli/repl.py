"""The interactive chat of `docker model run MODEL`: history across turns, a few slash commands."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import NamedTuple

import click

from docker_model.cli.chat_stream import ChatEndpoint, checked_text, include_files, print_reply, stream_chat
from docker_model.cli.client import RunnerError, qualified, unexpected_answer

PROMPT = "> "
CONTINUATION = "... "
FENCE = '"""'
EXIT_HINT = "Use Ctrl + d or /bye to exit."
# name -> (type, lowest value, highest value, what a valid value is)
PARAMETERS: dict[str, tuple[type, float | None, float | None, str]] = {
    "max_tokens": (int, 1, None, "a whole number of at least 1"),
    "temperature": (float, 0, None, "a number of at least 0"),
    "top_p": (float, 0, 1, "a number from 0 to 1"),
    "top_k": (int, 0, None, "a whole number of at least 0"),
    "seed": (int, None, None, "a whole number"),
}
CONTEXT_FULL = "context_length_exceeded"
HELP = f"""Available commands:
  /set system <text>              Set the system message
  /set parameter <name> <value>   Set a sampling parameter: {", ".join(PARAMETERS)}
  /set num_ctx <n>                Set the model's context size in tokens (as `configure --context-size`)
  /clear                          Forget the conversation so far
  /bye, /exit                     Exit
  /?, /help                       Show this help

Use {FENCE} to begin and end a multi-line message, sent as it is written. Outside {FENCE}, a word @path
includes that file's text (@"path with spaces" too, up to 1 MiB); write @@word to send @word as it is."""
# Sets the model's context size, returning what to tell the user; None: the chat is not with the runner.
SetContext = Callable[[int], str]


class Message(NamedTuple):
    text: str
    fenced: bool = False  # written between \"\"\" fences: sent as it is (pasted code's @decorators are no files)


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

    def drop_oldest_turn(self) -> bool:
        """Forget the oldest question and answer (never the system message); False when none is left."""
        if not self.turns:
            return False
        del self.turns[:2]
        return True


def read_message() -> Message | None:
    """One message from the terminal, `\"\"\"`-fenced ones across lines; None at end of input (Ctrl-D)."""
    try:
        line = input(PROMPT)
    except EOFError:
        return None
    if not line.lstrip().startswith(FENCE):
        return Message(line)
    text = line.lstrip()[len(FENCE) :]
    lines = []
    while not text.rstrip().endswith(FENCE):
        lines.append(text)
        try:
            text = input(CONTINUATION)
        except EOFError:
            return None
    lines.append(text.rstrip()[: -len(FENCE)])
    return Message("\n".join(lines).strip("\n"), fenced=True)


def handle_command(line: str, conversation: Conversation, set_context: SetContext | None = None) -> bool:
    """Run a slash command; returns False when the chat should end."""
    command, *words = line.split()
    if command in ("/bye", "/exit") and not words:
        return False
    if command in ("/?", "/help") and not words:
        click.echo(HELP)
    elif command == "/clear" and not words:
        conversation.turns.clear()
        click.echo("Cleared the conversation.")
    elif command == "/set" and words[:1] == ["system"]:
        conversation.system = line.split(None, 2)[2].strip() if len(words) > 1 else None
        click.echo("Set the system message." if conversation.system else "Cleared the system message.")
    elif command == "/set" and words[:1] == ["num_ctx"]:
        set_num_ctx(words[1:], set_context)
    elif command == "/set" and words[:2] == ["parameter", "num_ctx"]:  # Docker Model Runner's older form
        set_num_ctx(words[2:], set_context)
    elif command == "/set" and words[:1] == ["parameter"]:
        set_parameter(words[1:], conversation)
    else:
        click.echo(f"Unknown command '{line.strip()}'. Type /? for help.")
    return True


def set_num_ctx(values: list[str], set_context: SetContext | None) -> None:
    """Ollama's and Docker Model Runner's `/set num_ctx N`: the runner reloads the model with N tokens."""
    text = values[0] if len(values) == 1 else None
    if set_context is None:
        click.echo("num_ctx sets a context size on Docker Model Runner: the --openaiurl server has its own")
    elif text is None:
        click.echo("Usage: /set num_ctx <n>, a whole number of tokens")
    elif not (text.isascii() and text.isdigit()) or int(text) < 1:  # '²'.isdigit(), but int('²') fails
        click.echo(f"'{text}' is not a valid value for num_ctx: use a whole number of at least 1")
    else:
        try:
            click.echo(set_context(int(text)))
        except click.ClickException as error:
            click.echo(f"Error: {error.message}", err=True)


def runner_context_setter(endpoint: ChatEndpoint, model: str) -> SetContext | None:
    """How `/set num_ctx` sets the context size: the runner's configure, which reloads the model with it."""
    if not endpoint.is_runner:
        return None

    def set_context(tokens: int) -> str:
        body = {"model": qualified(model), "context-size": tokens}
        with endpoint.client.request("POST", "/engines/_configure", json_body=body) as reply:
            configured = reply.json()
        if not isinstance(configured, dict):
            raise unexpected_answer(reply, "not a JSON object")
        return f"Set num_ctx to {configured.get('context_size', tokens)}"

    return set_context


def set_parameter(words: list[str], conversation: Conversation) -> None:
    if len(words) != 2 or words[0] not in PARAMETERS:
        click.echo(f"Usage: /set parameter <name> <value>, with a name among {', '.join(PARAMETERS)}")
        return
    name, text = words
    kind, low, high, valid = PARAMETERS[name]
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or (low is not None and value < low) or (high is not None and value > high):
        click.echo(f"'{text}' is not a valid value for {name}: use {valid}")
        return
    conversation.options[name] = value
    click.echo(f"Set parameter '{name}' to '{text}'")


def answer(
    endpoint: ChatEndpoint, model: str, message: Message, conversation: Conversation, markdown: bool, debug: bool
) -> None:
    """One turn. Errors are shown and the chat goes on; when the history outgrows the model's context,
    the oldest turns are dropped, as long as any are left."""
    if endpoint.is_runner:
        endpoint.client.checked = False  # the runner may have stopped since the last turn: start it again if so
    try:
        text = checked_text(message.text, "the message")
        text = text if message.fenced else include_files(text)
    except click.ClickException as error:
        click.echo(f"Error: {error.message}", err=True)
        return
    while True:
        pieces = stream_chat(endpoint, model, conversation.messages(text), debug, conversation.options)
        try:
            reply = print_reply(pieces, markdown)
        except RunnerError as error:
            if error.code == CONTEXT_FULL and conversation.drop_oldest_turn():
                click.echo("(the conversation outgrew the context: dropped the oldest turn)", err=True)
                continue
            click.echo(f"Error: {error.message}", err=True)
            return
        except click.ClickException as error:
            click.echo(f"Error: {error.message}", err=True)
            return
        except KeyboardInterrupt:
            pieces.close()
            click.echo("\n(reply cancelled)")
            return
        conversation.record(text, reply)
        return


def chat(endpoint: ChatEndpoint, model: str, markdown: bool, debug: bool) -> None:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()

    conversation = Conversation()
    set_context = runner_context_setter(endpoint, model)
    while True:
        try:
            message = read_message()
        except KeyboardInterrupt:
            click.echo(f"\n{EXIT_HINT}")
            continue
        if message is None:
            click.echo()
            return
        if not message.text.strip():
            continue
        if message.text.startswith("/") and not message.text.startswith("//") and not message.fenced:
            if not handle_command(message.text, conversation, set_context):
                return
            continue
        answer(endpoint, model, message, conversation, markdown, debug)
