"""Request fields OpenAI's API accepts: penalties sample as they should, tool round trips render, content
parts are checked, every field is honoured or refused by name, and one bad request fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from docker_model.runner.worker.engine import Engine
from docker_model.runner.worker.jobs import FINISH_ERROR, CompletionJob
from docker_model.runner.worker.llama import LlamaModel
from docker_model.runner.worker.sampling import SamplingParams

from .conftest import FRANCE, Worker

pytestmark = pytest.mark.integration

REPETITIVE = "Say cat forever: cat"


def repeats(worker: Worker, **fields: object) -> int:
    """How often greedy decoding repeats `cat` after a prompt that invites it."""
    reply = worker.client.completions.create(
        model="m", prompt=REPETITIVE, max_tokens=48, temperature=0, extra_body=fields
    )
    return reply.choices[0].text.count("cat")


@pytest.mark.parametrize(
    "fields",
    [{"presence_penalty": 2.0}, {"frequency_penalty": 2.0}, {"repeat_penalty": 1.8}],
    ids=lambda fields: next(iter(fields)),
)
def test_each_penalty_makes_greedy_output_repeat_less(worker: Worker, fields: dict[str, float]) -> None:
    plain = repeats(worker)
    assert plain >= 8, "the prompt no longer invites repeats: pick another one"
    assert repeats(worker, **fields) < plain / 2


def test_the_repeat_penalty_runtime_flag_is_the_default_of_every_request(
    worker: Worker, worker_factory: Callable[..., Worker]
) -> None:
    penalised = worker_factory("--repeat-penalty", "1.8")
    assert repeats(penalised) < repeats(worker) / 2
    assert repeats(penalised, repeat_penalty=1.0) == repeats(worker)  # a request's own value still wins


def test_a_penalised_request_beside_a_stream_leaves_the_stream_whole(worker: Worker) -> None:
    """The request that used to crash the worker, sent while another client streams."""
    pieces: list[str] = []
    started = threading.Event()

    def stream() -> None:
        for chunk in worker.client.chat.completions.create(
            model="m", messages=FRANCE, max_tokens=64, stream=True, extra_body={"ignore_eos": True}
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                started.set()

    streamer = threading.Thread(target=stream)
    streamer.start()
    assert started.wait(60)
    reply = worker.client.chat.completions.create(
        model="m", messages=FRANCE, max_tokens=16, presence_penalty=1.0, frequency_penalty=0.5
    )
    streamer.join(120)
    assert reply.choices[0].message.content
    assert len(pieces) >= 32  # ignore_eos: the stream ran its whole 64 tokens (pieces may join tokens)


def test_a_request_whose_sampler_cannot_be_built_fails_alone(smollm2_gguf: Path) -> None:
    """In the engine itself, with the real model: any set-up error fails its own request, not the engine."""

    async def scenario() -> tuple[CompletionJob, CompletionJob]:
        model = LlamaModel(smollm2_gguf)
        engine = Engine(model, ctx_size=256, parallel=2, n_batch=64, threads=2, max_queue=4)
        engine.start(asyncio.get_running_loop())
        try:
            prompt = model.tokenize("Once upon a time")
            good = CompletionJob(prompt, SamplingParams(temperature=0, ignore_eos=True), max_tokens=24)
            broken = CompletionJob(prompt, SamplingParams(top_k="many"), max_tokens=24)  # type: ignore[arg-type]
            engine.submit(good)
            text = good.stream()
            await anext(text)  # the good request is generating when the broken one arrives
            engine.submit(broken)
            await asyncio.gather(broken.collect(), asyncio.wait_for(_drain(text), 60))
            return good, broken
        finally:
            engine.close()

    good, broken = asyncio.run(scenario())
    assert (broken.finish, broken.completion_tokens) == (FINISH_ERROR, 0)
    assert broken.error is not None and "could not be started" in broken.error
    assert (good.finish, good.completion_tokens) == ("length", 24)


async def _drain(stream: object) -> None:
    async for _ in stream:  # type: ignore[attr-defined]
        pass


def test_a_tool_round_trip_with_null_content_renders(worker: Worker) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
        {"role": "user", "content": [{"type": "text", "text": "Say it "}, {"type": "text", "text": "briefly."}]},
    ]
    reply = worker.client.chat.completions.create(model="m", messages=messages, max_tokens=8)  # type: ignore[arg-type]
    assert reply.choices[0].message.content


@pytest.mark.parametrize(
    ("content", "param"),
    [
        ([{"type": "text", "text": None}], "messages[0].content[0].text"),
        ([{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}], "messages[0].content[1]"),
    ],
)
def test_content_parts_this_model_cannot_take_are_a_400_naming_them(
    worker: Worker, content: list[dict], param: str
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    response = httpx.post(f"{worker.base_url}/chat/completions", json=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def body_for(endpoint: str, **fields: object) -> dict[str, object]:
    text = {"messages": FRANCE} if endpoint == "chat/completions" else {"prompt": "Hi"}
    return {"model": "m", **text, "max_tokens": 2, **fields}


@pytest.mark.parametrize(
    ("endpoint", "fields", "param"),
    [
        ("completions", {"echo": True}, "echo"),
        ("completions", {"suffix": "end"}, "suffix"),
        ("completions", {"best_of": 3}, "best_of"),
        ("chat/completions", {"cache_prompt": False}, "cache_prompt"),
        ("chat/completions", {"n_probs": 3}, "n_probs"),
        ("chat/completions", {"samplers": ["top_k"]}, "samplers"),
        ("chat/completions", {"reasoning_effort": "low"}, "reasoning_effort"),
        ("chat/completions", {"modalities": ["text", "audio"]}, "modalities"),
        ("chat/completions", {"functions": [{"name": "f"}]}, "functions"),
        ("embeddings", {"dimensions": 64}, "dimensions"),
    ],
)
def test_fields_this_server_does_not_do_are_refused_by_name(
    worker: Worker, endpoint: str, fields: dict, param: str
) -> None:
    body = body_for(endpoint, **fields) if endpoint != "embeddings" else {"model": "m", "input": "Hi", **fields}
    response = httpx.post(f"{worker.base_url}/{endpoint}", json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "unsupported_parameter", "invalid_request_error")
    assert param in error["message"]


@pytest.mark.parametrize(
    ("endpoint", "fields", "param"),
    [
        ("chat/completions", {"temprature": 0.5}, "temprature"),
        ("completions", {"messages": FRANCE}, "messages"),
        ("chat/completions", {"response_format": {"type": "text", "strict": True}}, "response_format.strict"),
        ("chat/completions", {"stream_options": {"include_usage": True, "x": 1}}, "stream_options.x"),
    ],
)
def test_unknown_fields_are_a_400_naming_them(worker: Worker, endpoint: str, fields: dict, param: str) -> None:
    response = httpx.post(f"{worker.base_url}/{endpoint}", json=body_for(endpoint, **fields), timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, "unknown_parameter")
    assert param in error["message"]


@pytest.mark.parametrize(
    ("endpoint", "fields"),
    [
        ("chat/completions", {"logprobs": False, "n": 1, "cache_prompt": True, "modalities": ["text"]}),
        ("chat/completions", {"top_logprobs": 0, "user": "u", "metadata": {"k": "v"}, "store": False}),
        ("chat/completions", {"service_tier": "auto", "safety_identifier": "s", "prompt_cache_key": "k"}),
        ("completions", {"echo": False, "n": 1, "best_of": 1, "n_probs": 0}),
    ],
)
def test_default_values_and_fields_without_local_meaning_are_accepted(
    worker: Worker, endpoint: str, fields: dict
) -> None:
    response = httpx.post(f"{worker.base_url}/{endpoint}", json=body_for(endpoint, **fields), timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["logprobs"] is None


SAMPLER_FIELDS = [
    {"typical_p": 0.3},
    {"top_n_sigma": 0.5},
    {"xtc_probability": 1.0, "xtc_threshold": 0.05},
    {"dynatemp_range": 1.5},
    {"mirostat": 1, "mirostat_tau": 2.0},
    {"mirostat": 2, "mirostat_tau": 2.0, "mirostat_eta": 0.5},
]


def sampled(worker: Worker, **fields: object) -> str:
    reply = worker.client.completions.create(
        model="m", prompt="Once upon a time", max_tokens=24, temperature=1.5, seed=11, extra_body={"top_k": 0, **fields}
    )
    return reply.choices[0].text


@pytest.mark.parametrize("fields", SAMPLER_FIELDS, ids=lambda fields: "+".join(fields))
def test_each_llama_server_sampler_field_changes_what_a_fixed_seed_samples(worker: Worker, fields: dict) -> None:
    plain = sampled(worker)
    assert sampled(worker) == plain  # the seed alone fixes the text
    assert sampled(worker, **fields) != plain


def test_dry_cuts_repeats_and_n_predict_limits_the_answer(worker: Worker) -> None:
    # The repeats are "forever: cat"; ":" is one of DRY's default sequence breakers, which end a repeat.
    assert repeats(worker, dry_multiplier=2.0, dry_allowed_length=1) == repeats(worker)
    assert repeats(worker, dry_multiplier=2.0, dry_allowed_length=1, dry_sequence_breakers=["\n"]) < repeats(worker) / 2
    reply = worker.client.completions.create(model="m", prompt="Hi", extra_body={"n_predict": 3, "ignore_eos": True})
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_chat_messages_carry_a_null_refusal(worker: Worker) -> None:
    body = {"model": "m", "messages": FRANCE, "max_tokens": 2}
    message = httpx.post(f"{worker.base_url}/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]
    assert "refusal" in message and message["refusal"] is None
    stream = worker.client.chat.completions.create(model="m", messages=FRANCE, max_tokens=2, stream=True)
    first = next(iter(stream)).choices[0].delta
    assert first.role == "assistant" and first.refusal is None and "refusal" in first.model_dump()


def test_a_full_queue_is_a_503_in_the_one_error_shape(worker_factory: Callable[..., Worker]) -> None:
    busy = worker_factory("--parallel", "1", "--max-queue", "0")
    with httpx.Client(timeout=60) as client:
        body = {"model": "m", "messages": FRANCE, "max_tokens": 64, "ignore_eos": True, "stream": True}
        with client.stream("POST", f"{busy.base_url}/chat/completions", json=body) as streaming:
            assert streaming.status_code == 200
            next(streaming.iter_lines())
            with pytest.raises(openai.APIStatusError) as caught:
                busy.client.chat.completions.create(model="m", messages=FRANCE, max_tokens=2)
    assert caught.value.status_code == 503
    assert caught.value.body == {
        "message": "the model is busy: too many requests are waiting, retry later",
        "type": "server_overloaded",
        "param": None,
        "code": "overloaded",
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/chat/completions", 400, "invalid_request"),
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/chat/completions", 405, "method_not_allowed"),
    ],
)
def test_every_worker_error_has_the_one_shape(worker: Worker, method: str, path: str, status: int, code: str) -> None:
    response = httpx.request(method, f"{worker.base_url}{path}", content=b"{", timeout=30)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code


def test_logit_bias_favours_a_token_and_names_a_bad_one(worker: Worker) -> None:
    def complete(bias: dict[str, int], max_tokens: int) -> str:
        reply = worker.client.completions.create(
            model="m", prompt="The capital of France is", max_tokens=max_tokens, temperature=0, logit_bias=bias
        )
        return reply.choices[0].text

    forced = complete({"1000": 100}, 3)
    assert forced and forced == forced[: len(forced) // 3] * 3  # the one favoured token, three times
    assert complete({}, 3) != forced
    with pytest.raises(openai.BadRequestError) as refused:
        complete({"999999": 5}, 1)
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "logit_bias"
