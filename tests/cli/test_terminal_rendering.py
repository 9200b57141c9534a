"""How the CLI shows a streamed answer on a terminal, rendered by rich into a recording console: every
block once, the model's line breaks kept, no padding, no escape sequences from the model."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from docker_model.cli.chat_stream import Piece
from docker_model.cli.markdown_view import Block, finished_length, keep_line_breaks, print_markdown
from docker_model.cli.render import safe_for_terminal

POEM = "The sea is wide,\nthe sea is deep,\nit sings the shore\nto gentle sleep."


def rendered(text: str, width: int = 60) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(Block(text))
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def test_a_poem_keeps_its_lines_and_no_line_is_padded() -> None:
    assert rendered(POEM) == POEM.splitlines()


def test_paragraphs_lists_and_code_keep_their_shape() -> None:
    text = "Intro line\nsecond line\n\n- one\n- two\n\n```\nx = 1\ny = 2\n```"
    lines = rendered(text)
    assert lines[:2] == ["Intro line", "second line"]
    assert any(line.strip().endswith("one") for line in lines)
    assert all(line == line.rstrip() for line in lines)
    assert any("x = 1" in line for line in lines) and any("y = 2" in line for line in lines)


def test_code_blocks_are_left_as_written() -> None:
    assert keep_line_breaks("```\na\nb\n```") == "```\na\nb\n```"
    assert keep_line_breaks("a\nb\n\nc") == "a  \nb\n\nc"


@pytest.mark.parametrize(
    ("text", "finished"),
    [
        ("one paragraph, still going", 0),
        ("first\n\nsecond", len("first\n\n")),
        ("```\ncode\n\nmore code", 0),  # a blank line inside an open fence ends nothing
        ("```\ncode\n```\n\nafter", len("```\ncode\n```\n\n")),
    ],
)
def test_finished_blocks_end_at_a_blank_line_outside_code(text: str, finished: int) -> None:
    assert finished_length(text) == finished


def test_a_streamed_answer_appears_once(capsys: pytest.CaptureFixture[str]) -> None:
    paragraphs = [f"Paragraph {i} says something." for i in range(30)]
    text = "\n\n".join(paragraphs)
    pieces = (Piece(text[i : i + 7]) for i in range(0, len(text), 7))
    assert print_markdown(pieces) == text
    out = capsys.readouterr().out
    for paragraph in paragraphs:
        assert out.count(paragraph) == 1


def test_escape_sequences_from_the_model_are_removed() -> None:
    hostile = "ok\x1b[2J\x1b]0;pwned\x07\x1b[31mred\x1b[0m\rdone\x07\tend\n"
    assert safe_for_terminal(hostile) == "okreddone\tend\n"


def test_table_cells_from_model_metadata_cannot_drive_the_terminal() -> None:
    from docker_model.cli.render import table

    hostile = ["ai/evil", "llama\x1b]0;pwned\x07\x1b[2J", "Q4\r\nK_M\tx"]
    row = table(("MODEL", "ARCHITECTURE", "QUANTIZATION"), [hostile]).splitlines()[1]
    assert [cell.strip() for cell in row.split("   ") if cell.strip()] == ["ai/evil", "llama", "Q4 K_M x"]
