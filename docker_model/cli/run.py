"""`docker model run MODEL [PROMPT...]`: one answer, or an interactive chat on a terminal.

With `--openaiurl URL` the chat goes to that OpenAI-compatible server, the model named as given, and no
local runner is started. A prompt word `@path` includes that file's text (in the chat too).
"""

from __future__ import annotations

import sys

import click

from docker_model.cli.chat_stream import (
    ChatEndpoint,
    checked_text,
    include_files,
    openai_endpoint,
    print_reply,
    stream_chat,
)
from docker_model.cli.client import RunnerClient, model_path
from docker_model.cli.transfer import pull_model


def ensure_model(client: RunnerClient, model: str) -> None:
    """Pull the model when the store lacks it, as `docker run` does with images."""
    with client.send("GET", model_path(model)) as reply:
        status = reply.status
    if status == 404:
        click.echo(f"Unable to find model '{model}' locally. Pulling from the server.", err=True)
        pull_model(client, model, err=True)  # stdout is for the answer: `run M "q" > answer.txt`
    elif status >= 400:
        client.request("GET", model_path(model))  # raises the runner's one-line error


def prompt_from(words: tuple[str, ...]) -> str:
    """The prompt: the arguments (their @path words replaced by those files' text), plus piped standard input
    after a blank line (as it is: piped text often holds @ words, such as Python's decorators)."""
    prompt = include_files(checked_text(" ".join(words), "the prompt"))
    if not sys.stdin.isatty():
        data = sys.stdin.buffer.read()
        try:
            piped = data.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            raise click.ClickException(
                f"standard input is not UTF-8 text (byte {error.start} is {data[error.start]:#04x}): "
                "convert it first, e.g. `iconv -f latin1 -t utf-8 FILE`"
            ) from None
        prompt = f"{prompt}\n\n{piped}" if prompt and piped else prompt or piped
    return prompt


def use_markdown(color: str) -> bool:
    return color == "yes" or (color == "auto" and sys.stdout.isatty())


@click.command()
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("-d", "--detach", is_flag=True, help="Load the model in the background and exit")
@click.option("--debug", is_flag=True, help="Show the requests sent to the runner")
@click.option("--color", type=click.Choice(["auto", "yes", "no"]), default="auto", help="Render Markdown in color")
@click.option("--openaiurl", metavar="URL", help="Chat with this OpenAI-compatible API instead (key: $OPENAI_API_KEY)")
def run(model: str, prompt: tuple[str, ...], detach: bool, debug: bool, color: str, openaiurl: str | None) -> None:
    """Run a model: answer PROMPT, or chat when no prompt is given."""
    if detach and prompt:
        raise click.UsageError("--detach only loads the model: leave out the prompt, or drop --detach to get an answer")
    if detach and openaiurl:
        raise click.UsageError("--detach loads a model into the local runner: it cannot be used with --openaiurl")
    endpoint = openai_endpoint(openaiurl) if openaiurl else None
    one_shot = bool(prompt) or not sys.stdin.isatty()
    text = prompt_from(prompt) if one_shot and not detach else ""  # checked before anything starts
    if one_shot and not detach and not text:
        raise click.UsageError("the prompt is empty: give one as arguments or on standard input")
    if endpoint is None:
        client = RunnerClient()
        client.ensure_running(load=model)
        ensure_model(client, model)
        endpoint = ChatEndpoint(client)
    if detach:
        preload(endpoint.client, model)
        click.echo(f"Model {model} is loaded")
        return
    markdown = use_markdown(color)
    if one_shot:
        try:
            print_reply(stream_chat(endpoint, model, [{"role": "user", "content": text}], debug), markdown)
        except KeyboardInterrupt:
            sys.exit(130)
        return
    from docker_model.cli.repl import chat

    click.echo("Interactive chat mode started. Type '/bye' to exit, '/?' for help.")
    chat(endpoint, model, markdown, debug)


def preload(client: RunnerClient, model: str) -> None:
    """Load the model without an answer: Docker Model Runner's `X-Preload-Only` chat request."""
    body = {"model": model, "messages": []}
    headers = {"X-Preload-Only": "true"}
    client.request("POST", "/engines/v1/chat/completions", json_body=body, headers=headers).close()
