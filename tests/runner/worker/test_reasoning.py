"""`<think>` blocks become reasoning_content, whichever way the tags are split into tokens."""

from __future__ import annotations

import pytest

from docker_model.runner.worker.reasoning import ReasoningSplitter, prompt_opens_thinking


def split(pieces: list[str], thinking: bool = False) -> tuple[str, str]:
    splitter = ReasoningSplitter(thinking)
    parts = [splitter.feed(p) for p in pieces] + [splitter.flush()]
    return "".join(p[0] for p in parts), "".join(p[1] for p in parts)


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>let me see</think>\n\nParis"],
        ["<thi", "nk>let me", " see</th", "ink>", "\n\nParis"],
        list("<think>let me see</think>\n\nParis"),
    ],
)
def test_think_block_goes_to_reasoning(pieces: list[str]) -> None:
    assert split(pieces) == ("Paris", "let me see")


def test_no_think_block_is_plain_content() -> None:
    assert split(["The answer ", "is <think> literally"]) == ("The answer is <think> literally", "")


def test_prompt_that_opens_thinking() -> None:
    assert prompt_opens_thinking("<|im_start|>assistant\n<think>\n")
    assert not prompt_opens_thinking("<|im_start|>assistant\n")
    assert split(["hmm", "</think>", "Yes"], thinking=True) == ("Yes", "hmm")
