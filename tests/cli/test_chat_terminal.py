"""The chat in a real terminal (tmux): a long answer appears once in the scrollback, and the chat goes on
after a message too long for the context, a conversation that outgrows it, and a runner that stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import MODEL
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration

PROMPT = "> "
EXITED = "chat exited with status "
CONTEXT = 512


class Tmux:
    """One program in a tmux window of a private tmux server, driven by keys and read from the screen."""

    def __init__(self, command: list[str], env: dict[str, str], workdir: Path, width: int = 80, height: int = 12):
        if shutil.which("tmux") is None:
            pytest.fail("tmux is needed for the terminal tests (Debian: tmux; .ci/run installs it)")
        self.socket = f"dm-{uuid.uuid4().hex[:8]}"
        config = workdir / "tmux.conf"
        config.write_text("set -g history-limit 20000\nset -g remain-on-exit on\n")
        self.tmux("-f", str(config), "new-session", "-d", "-x", str(width), "-y", str(height), *command, env=env)

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], env=env, capture_output=True, text=True, check=True, timeout=30
        )
        return result.stdout

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-l", text)
        self.tmux("send-keys", "Enter")

    def scrollback(self) -> str:
        """Everything the window showed, scrolled-off lines included."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-E", "-")

    def wait_for(self, condition: object, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.scrollback()
            if condition(text):  # type: ignore[operator]
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out; the terminal shows:\n{self.scrollback()}")

    def wait_for_prompt(self, count: int, timeout: float = 180) -> str:
        """Wait until the chat's prompt has been shown `count` times, the last one waiting for input."""
        return self.wait_for(lambda text: prompts(text) >= count and text.rstrip().endswith(">"), timeout)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def prompts(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.rstrip() == ">" or line.startswith(PROMPT))


@pytest.fixture(scope="module")
def small_context_cli(chat_cli: DockerCLI) -> DockerCLI:
    configured = chat_cli.run("model", "configure", "--context-size", str(CONTEXT), MODEL, "--", "--temp", "0")
    assert configured.returncode == 0, configured.stderr
    return chat_cli


@pytest.fixture
def chat(small_context_cli: DockerCLI, tmp_path: Path) -> Iterator[Tmux]:
    command = f'docker model run {MODEL}; echo "{EXITED}$?"'  # the exit status, shown in the terminal
    terminal = Tmux(["sh", "-c", command], small_context_cli.environment(), tmp_path)
    try:
        terminal.wait_for_prompt(1, timeout=120)
        yield terminal
    finally:
        terminal.close()


def answer_lines(text: str, question: str) -> list[str]:
    """The lines shown between a question and the next prompt."""
    after = text.split(f"{PROMPT}{question}", 1)[1].splitlines()[1:]
    end = next(i for i, line in enumerate(after) if line.startswith(PROMPT) or line.rstrip() == ">")
    return [line for line in after[:end] if line.strip()]


def test_an_answer_taller_than_the_window_appears_once(chat: Tmux) -> None:
    chat.type("/set parameter max_tokens 240")
    chat.wait_for_prompt(2)
    question = "Write a long story about a dragon named Ember who guards a library."
    chat.type(question)
    text = chat.wait_for_prompt(3)
    lines = answer_lines(text, question)
    assert len(lines) > 12, f"the answer fits the 12-line window: pick a longer question\n{text}"
    for line in lines[:3]:  # the redraw bug printed the start of the answer again and again
        assert text.count(line) == 1, f"printed more than once: {line!r}\n{text}"
    assert all(len(line) < 80 or line == line.rstrip() for line in lines)  # not padded to the window's width


def test_a_poem_keeps_its_lines(chat: Tmux) -> None:
    """Rendered as Markdown, the model's single line breaks would join its lines into one paragraph."""
    question = "Write a four-line poem about the moon."
    chat.type(question)
    lines = answer_lines(chat.wait_for_prompt(2), question)
    assert len(lines) == 4, lines  # SmolLM2 at temperature 0 writes four lines, each under the width
    assert lines[0] == "In twilight's cloak, where shadows play,"


def test_the_chat_goes_on_after_errors_and_bad_settings(chat: Tmux) -> None:
    chat.type("/set parameter max_tokens -3")
    text = chat.wait_for_prompt(2)
    assert "'-3' is not a valid value for max_tokens" in text
    chat.type("/set systemic hello")
    assert "Unknown command '/set systemic hello'" in chat.wait_for_prompt(3)
    chat.type("word " * 700)  # more than the 512-token context
    text = chat.wait_for_prompt(4)
    assert "does not fit the context size of 512 tokens" in text
    chat.type("/set parameter max_tokens 16")
    chat.wait_for_prompt(5)
    chat.type("Say hello.")
    text = chat.wait_for_prompt(6)
    assert answer_lines(text, "Say hello.")
    chat.type("/bye")
    assert f"{EXITED}0" in chat.wait_for(lambda text: EXITED in text, timeout=30)


def test_a_conversation_that_outgrows_the_context_drops_its_oldest_turns(chat: Tmux) -> None:
    chat.type("/set parameter max_tokens 40")
    chat.wait_for_prompt(2)
    notice = "dropped the oldest turn"
    for turn in range(6):
        chat.type(f"Remember fact {turn}: " + "the sky over the quiet harbour is grey " * 12)
        text = chat.wait_for_prompt(3 + turn)
        assert "Error" not in text, text
        if notice in text:
            break
    assert notice in text, text


def test_the_chat_starts_the_runner_again_when_it_went_away(
    chat: Tmux, small_context_cli: DockerCLI, runner_env: RunnerEnv
) -> None:
    chat.type("/set parameter max_tokens 8")
    chat.wait_for_prompt(2)
    stopped = small_context_cli.run("model", "stop-runner")
    assert stopped.stdout.strip() == "Docker Model Runner stopped"
    chat.type("Say hello.")
    text = chat.wait_for_prompt(3)
    assert "Error" not in text, text
    assert answer_lines(text, "Say hello.")
    assert runner_env.is_up()


def test_an_answer_cut_off_mid_stream_is_reported_and_the_chat_goes_on(
    chat: Tmux, runner_env: RunnerEnv, small_context_cli: DockerCLI
) -> None:
    chat.type("/set parameter max_tokens 400")
    chat.wait_for_prompt(2)
    question = "Write a long story about a dragon named Ember who guards a library."
    chat.type(question)
    chat.wait_for(lambda text: len(text.split(question, 1)[-1].strip()) > 40)  # the answer is streaming
    record = json.loads((runner_env.state_dir / f"runner-{runner_env.port}.pid").read_text())
    os.kill(record["pid"], signal.SIGKILL)  # the runner dies; its worker follows it, mid-answer
    text = chat.wait_for_prompt(3)
    assert "Error: the answer is incomplete: the runner stopped before it finished" in text, text
    chat.type("/set parameter max_tokens 8")
    chat.wait_for_prompt(4)
    chat.type("Say hello.")
    assert answer_lines(chat.wait_for_prompt(5), "Say hello.")
