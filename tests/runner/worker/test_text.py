"""Stop strings and UTF-8 reassembly, fed token by token as the engine does."""

from __future__ import annotations

from docker_model.runner.worker.text import StopMatcher, TokenText, partial_suffix_len


def run(pieces: list[bytes], stops: list[str]) -> tuple[str, bool]:
    text = TokenText(stops)
    out = []
    for piece in pieces:
        chunk, stopped = text.feed(piece)
        out.append(chunk)
        if stopped:
            return "".join(out), True
    return "".join(out) + text.flush(), False


def test_partial_suffix_len() -> None:
    assert partial_suffix_len("hello wor", ["world"]) == 3
    assert partial_suffix_len("hello", ["world"]) == 0
    assert partial_suffix_len("abc", ["c", "bcd"]) == 2


def test_stop_string_split_across_tokens_never_leaks() -> None:
    emitted = []
    matcher = StopMatcher(["STOP"])
    for piece in ["Hello S", "T", "O", "P and more"]:
        text, stopped = matcher.feed(piece)
        emitted.append(text)
        if stopped:
            break
    assert emitted == ["Hello ", "", "", ""]
    assert stopped


def test_held_text_that_is_not_a_stop_is_released() -> None:
    assert run([b"a S", b"TOx", b" end"], ["STOP"]) == ("a STOx end", False)
    assert run([b"tail S"], ["STOP"]) == ("tail S", False)


def test_earliest_of_several_stops_wins() -> None:
    assert run([b"one two three"], ["three", "two"]) == ("one ", True)


def test_multibyte_character_split_across_tokens() -> None:
    euro = "€".encode()
    assert run([b"price: ", euro[:1], euro[1:2], euro[2:], b"5"], []) == ("price: €5", False)


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert run([b"ok \xff"], []) == ("ok \ufffd", False)
