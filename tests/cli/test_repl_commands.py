"""The chat's slash commands: matched exactly, values checked when they are set."""

from __future__ import annotations

import pytest

from docker_model.cli.repl import Conversation, handle_command


def run(line: str, conversation: Conversation, capsys: pytest.CaptureFixture[str]) -> str:
    assert handle_command(line, conversation)
    return capsys.readouterr().out.strip()


def test_set_system_matches_the_word_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    conversation = Conversation()
    assert run("/set systemic hello", conversation, capsys).startswith("Unknown command '/set systemic hello'")
    assert conversation.system is None
    assert run("/set system Be  brief.", conversation, capsys) == "Set the system message."
    assert conversation.system == "Be  brief."
    assert run("/set system", conversation, capsys) == "Cleared the system message."
    assert run("/byebye", conversation, capsys).startswith("Unknown command")


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_tokens", "-3"), ("max_tokens", "0"), ("max_tokens", "1.5"), ("temperature", "-1"), ("top_p", "2")],
)
def test_out_of_range_parameters_are_refused_when_set(
    capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    conversation = Conversation()
    assert run(f"/set parameter {name} {value}", conversation, capsys).startswith(f"'{value}' is not a valid value")
    assert conversation.options == {}


def test_valid_parameters_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    conversation = Conversation()
    run("/set parameter max_tokens 200", conversation, capsys)
    run("/set parameter temperature 0.2", conversation, capsys)
    assert conversation.options == {"max_tokens": 200, "temperature": 0.2}


def test_dropping_turns_keeps_the_system_message() -> None:
    conversation = Conversation()
    conversation.system = "Be brief."
    conversation.record("a", "b")
    conversation.record("c", "d")
    assert conversation.drop_oldest_turn()
    assert conversation.messages("e") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ]
    assert conversation.drop_oldest_turn() and not conversation.drop_oldest_turn()
