"""The worker's OpenAI-compatible API, driven by the official `openai` SDK against the real model."""

from __future__ import annotations

from pathlib import Path

import gguf
import httpx
import openai
import pytest

from .conftest import FRANCE, Worker

pytestmark = pytest.mark.integration


def test_chat_answers_paris_with_usage(worker: Worker) -> None:
    reply = worker.client.chat.completions.create(model="ai/smollm2", messages=FRANCE, temperature=0)
    assert "Paris" in reply.choices[0].message.content
    assert reply.model == "ai/smollm2"
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage.prompt_tokens > 10 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_stream_answers_paris_and_reports_usage(worker: Worker) -> None:
    whole = worker.client.chat.completions.create(model="smollm2", messages=FRANCE, temperature=0)
    chunks = list(
        worker.client.chat.completions.create(
            model="smollm2",
            messages=FRANCE,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert "Paris" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_completions(worker: Worker) -> None:
    reply = worker.client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert reply.choices[0].text.strip()
    assert reply.usage.completion_tokens <= 6
    streamed = worker.client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=6, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_max_tokens_finishes_with_length(worker: Worker) -> None:
    reply = worker.client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_tokens=5,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 5


def test_embeddings(worker: Worker, smollm2_gguf: Path) -> None:
    reader = gguf.GGUFReader(smollm2_gguf)
    field = reader.fields["llama.embedding_length"]
    n_embd = int(field.parts[field.data[0]][0])
    client = worker.client
    first = client.embeddings.create(model="smollm2", input="The sky is blue.")  # SDK default: base64
    again = client.embeddings.create(model="smollm2", input="The sky is blue.", encoding_format="float")
    both = client.embeddings.create(model="smollm2", input=["The sky is blue.", "Pasta with tomato sauce."])
    assert len(first.data[0].embedding) == n_embd
    assert first.data[0].embedding == pytest.approx(again.data[0].embedding, abs=1e-5)
    assert [d.index for d in both.data] == [0, 1]
    assert both.data[0].embedding == pytest.approx(first.data[0].embedding, abs=1e-5)
    assert both.data[1].embedding != pytest.approx(first.data[0].embedding, abs=1e-3)
    assert both.usage.prompt_tokens > first.usage.prompt_tokens > 0


def test_stop_strings_cut_the_output_without_leaking(worker: Worker) -> None:
    messages = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    full = worker.client.chat.completions.create(model="m", messages=messages, temperature=0, max_tokens=40)
    text = full.choices[0].message.content
    assert ", 6" in text
    for stream in (False, True):
        reply = worker.client.chat.completions.create(
            model="m", messages=messages, temperature=0, max_tokens=40, stop=[", 6", "zzz"], stream=stream
        )
        if stream:
            chunks = [c.choices[0] for c in reply if c.choices]
            cut, finish = "".join(c.delta.content or "" for c in chunks), chunks[-1].finish_reason
        else:
            cut, finish = reply.choices[0].message.content, reply.choices[0].finish_reason
        assert cut == text[: text.index(", 6")]
        assert finish == "stop"


def test_seed_makes_sampling_reproducible(worker: Worker) -> None:
    def sample(seed: int) -> str:
        reply = worker.client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "Invent a name for a cat."}],
            temperature=1.2,
            seed=seed,
            max_tokens=24,
        )
        return reply.choices[0].message.content

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in (1, 2, 3, 4)}) > 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": -1}', "temperature"),
        (b'{"model": "m", "messages": []}', "messages"),
    ],
)
def test_bad_body_is_a_400_openai_error(worker: Worker, body: bytes, param: str | None) -> None:
    response = httpx.post(f"{worker.base_url}/chat/completions", content=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert error["param"] == param


def test_prompt_longer_than_the_context_is_a_400(worker: Worker) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        worker.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "word " * 1500}], max_tokens=4
        )
    assert caught.value.status_code == 400
    assert "context size of 1024 tokens" in caught.value.message
