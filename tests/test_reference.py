"""Model references: normalisation, display form, IDs, and precise errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_model.reference import (
    InvalidReferenceError,
    Reference,
    display_name,
    is_model_id,
    parse_reference,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "canonical", "display"),
    [
        ("smollm2", "docker.io/ai/smollm2:latest", "smollm2"),
        ("ai/smollm2", "docker.io/ai/smollm2:latest", "smollm2"),
        ("library/smollm2", "docker.io/ai/smollm2:latest", "smollm2"),
        ("docker.io/ai/gemma3:4B-Q4_K_M", "docker.io/ai/gemma3:4B-Q4_K_M", "gemma3:4B-Q4_K_M"),
        ("index.docker.io/ai/gemma3", "docker.io/ai/gemma3:latest", "gemma3"),
        ("smollm2:Q4_K_M", "docker.io/ai/smollm2:Q4_K_M", "smollm2:Q4_K_M"),
        ("LocalHost:5000/ai/x", "localhost:5000/ai/x:latest", "localhost:5000/ai/x"),
        ("myorg/llm:v2", "docker.io/myorg/llm:v2", "myorg/llm:v2"),
        ("localhost:5000/ai/x:v1", "localhost:5000/ai/x:v1", "localhost:5000/ai/x:v1"),
        ("localhost/x", "localhost/x:latest", "localhost/x"),
        (
            "registry.example.com/team/sub/model",
            "registry.example.com/team/sub/model:latest",
            "registry.example.com/team/sub/model",
        ),
        # Hugging Face models are stored as Docker Model Runner stores them: huggingface.co/...
        ("hf.co/Org/Repo-GGUF:Q8_0", "huggingface.co/org/repo-gguf:Q8_0", "huggingface.co/org/repo-gguf:Q8_0"),
        ("huggingface.co/org/repo", "huggingface.co/org/repo:latest", "huggingface.co/org/repo"),
        (f"smollm2@{DIGEST}", f"docker.io/ai/smollm2@{DIGEST}", f"smollm2@{DIGEST}"),
        (f"smollm2:v1@{DIGEST}", f"docker.io/ai/smollm2:v1@{DIGEST}", f"smollm2:v1@{DIGEST}"),
    ],
)
def test_normalisation_and_display(text: str, canonical: str, display: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == canonical
    assert ref.display == display
    assert display_name(canonical) == display


def test_parts_and_huggingface_flag() -> None:
    ref = parse_reference("localhost:5000/team/model:v1")
    assert ref == Reference("localhost:5000", "team/model", "v1", None)
    assert not ref.is_huggingface
    assert parse_reference("hf.co/bartowski/SmolLM2-135M-Instruct-GGUF").is_huggingface


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("SmolLM2:Q4_K_M", "repository name 'SmolLM2' must be lowercase: use 'smollm2'"),
        ("localhost:5000/Team/x", "repository name 'Team/x' must be lowercase"),
        ("   ", "empty"),
        ("smol lm", "whitespace"),
        ("model:", "tag ''"),
        ("model:-bad", "tag '-bad'"),
        ("model@sha256:abc", "digest must be"),
        ("model@md5:" + "a" * 32, "digest must be"),
        ("ai//model", "empty component"),
        ("ai/model/", "empty component"),
        ("ai/mo$del", "'mo$del'"),
        ("ai/-model", "'-model'"),
        ("bad_host.com:port/x", "registry 'bad_host.com:port'"),
        ("hf.co/only-org", "hf.co/<organisation>/<repository>"),
        ("a/" * 130 + "b", "longer than 255"),
    ],
)
def test_invalid_references_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_reference(text)
    assert problem in str(info.value)
    assert isinstance(info.value, ValueError)


def test_display_name_keeps_unparsable_text() -> None:
    assert display_name("not a reference") == "not a reference"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DIGEST, True),
        ("abababababab", True),
        ("sha256:abababababab", True),
        ("ababababab", False),  # fewer than 12 hex digits
        ("ABABABABABAB", False),
        ("smollm2", False),
        ("sha256:" + "a" * 65, False),
    ],
)
def test_is_model_id(text: str, expected: bool) -> None:
    assert is_model_id(text) is expected


# Property tests ---------------------------------------------------------------------------------

component = st.from_regex(r"[a-z0-9]{1,8}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,8}){0,2}", fullmatch=True)
first_component = component.filter(lambda c: "." not in c)  # a dotted first part names a registry
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
registry = st.sampled_from(["", "localhost:5000/", "registry.example.com/", "docker.io/", "127.0.0.1:1234/"])
digest = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@st.composite
def references(draw: st.DrawFn) -> str:
    text = draw(registry) + "/".join([draw(first_component), *draw(st.lists(component, max_size=2))])
    if draw(st.booleans()):
        text += ":" + draw(tag)
    if draw(st.booleans()):
        text += "@" + draw(digest)
    return text


@given(references())
def test_canonical_form_is_a_fixed_point(text: str) -> None:
    ref = parse_reference(text)
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.display) == ref
    assert ref.tag is not None or ref.digest is not None


@given(first_component, st.lists(component, max_size=2), tag)
def test_capital_names_are_refused_tags_keep_their_case(first: str, rest: list[str], tag_text: str) -> None:
    name = "/".join([first, *rest])
    if name != name.upper():
        with pytest.raises(InvalidReferenceError, match="must be lowercase"):
            parse_reference(f"{name.upper()}:{tag_text}")
    assert parse_reference(f"{name}:{tag_text}").tag == tag_text


@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_invalid_reference(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReferenceError as exc:
        assert str(exc).startswith("invalid model reference")
    else:
        assert ref.registry and ref.repository
        assert parse_reference(str(ref)) == ref
