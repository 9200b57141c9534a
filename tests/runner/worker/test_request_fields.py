"""Request fields OpenAI's API accepts: penalties sample as they should, tool round trips render, content
parts are checked, fields not supported yet are refused by name, and one bad request fails alone."""

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


def repeats(worker: Worker, **fields: float) -> int:
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


@pytest.mark.parametrize(
    ("endpoint", "fields", "param"),
    [
        ("chat/completions", {"logprobs": True}, "logprobs"),
        ("chat/completions", {"top_logprobs": 3}, "top_logprobs"),
        ("completions", {"logprobs": 2}, "logprobs"),
        ("completions", {"echo": True}, "echo"),
    ],
)
def test_fields_not_supported_yet_are_refused_by_name(worker: Worker, endpoint: str, fields: dict, param: str) -> None:
    body = {"model": "m", "messages": FRANCE, "prompt": "Hi", "max_tokens": 2, **fields}
    response = httpx.post(f"{worker.base_url}/{endpoint}", json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "unsupported_parameter", "invalid_request_error")
    assert param in error["message"]


@pytest.mark.parametrize(
    ("endpoint", "fields"),
    [
        ("chat/completions", {"logprobs": False, "n": 1}),
        ("chat/completions", {"top_logprobs": 0}),
        ("completions", {"logprobs": 0, "echo": False, "n": 1}),
    ],
)
def test_default_values_of_those_fields_are_accepted(worker: Worker, endpoint: str, fields: dict) -> None:
    body = {"model": "m", "messages": FRANCE, "prompt": "Hi", "max_tokens": 2, **fields}
    response = httpx.post(f"{worker.base_url}/{endpoint}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["logprobs"] is None


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
