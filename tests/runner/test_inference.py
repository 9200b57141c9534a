"""Inference through the runner with real clients: the openai SDK, raw HTTP, and a killed worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import openai
import pytest
import requests

from tests.fixtures.runner import RunnerEnv

from .conftest import MODEL, load_model

pytestmark = pytest.mark.integration

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}
FRANCE = {"role": "user", "content": "What is the capital of France?"}


@pytest.fixture
def client(served: RunnerEnv) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.base_url}/engines/v1", api_key="unused", max_retries=0)


def test_chat_answers_paris(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=[SYSTEM, FRANCE], temperature=0, max_tokens=32)
    assert "Paris" in reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


def test_chat_stream_answers_paris(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=[SYSTEM, FRANCE], temperature=0, max_tokens=32, stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([piece for piece in pieces if piece]) > 1  # streamed, not sent in one piece
    assert "Paris" in "".join(pieces)


def test_every_name_form_and_alias_reaches_the_model(served: RunnerEnv) -> None:
    body = {"messages": [SYSTEM, FRANCE], "temperature": 0, "max_tokens": 8}
    for prefix, name in [
        ("/engines/v1", "smollm2"),
        ("/engines/llama.cpp/v1", "ai/smollm2:latest"),
        ("/v1", "docker.io/ai/smollm2:latest"),
    ]:
        response = requests.post(
            f"{served.base_url}{prefix}/chat/completions", json={**body, "model": name}, timeout=60
        )
        assert response.status_code == 200, (prefix, name, response.text)
        assert response.json()["choices"][0]["message"]["content"]


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert "Paris" in reply.choices[0].text


def test_embeddings(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model=MODEL, input=["a cat", "a cat"])
    vectors = [item.embedding for item in first.data]
    assert len(vectors[0]) == 576  # SmolLM2-135M's embedding width
    assert vectors[0] == pytest.approx(vectors[1])


def test_model_listing(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [model.id for model in models] == ["ai/smollm2:latest"]
    assert models[0].owned_by == "docker"
    assert client.models.retrieve("ai/smollm2").id == "ai/smollm2:latest"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"messages": []}', 400, 'missing "model"'),
        (b'{"model": "ai/never-pulled", "messages": []}', 404, "model not found: ai/never-pulled"),
    ],
)
def test_errors_have_status_and_json_body(served: RunnerEnv, body: bytes, status: int, message: str) -> None:
    response = requests.post(f"{served.base_url}/engines/v1/chat/completions", data=body, timeout=30)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_a_body_over_10_mib_is_refused(served: RunnerEnv) -> None:
    response = requests.post(f"{served.base_url}/v1/chat/completions", data=b" " * (10 * 1024 * 1024 + 1), timeout=30)
    assert response.status_code == 413
    assert "too large" in response.json()["error"]["message"]


def test_foreign_browser_origins_are_refused(served: RunnerEnv) -> None:
    foreign = requests.get(f"{served.base_url}/engines/v1/models", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    local = requests.get(f"{served.base_url}/engines/v1/models", headers={"Origin": "http://localhost:3000"})
    assert local.status_code == 200


def test_two_streams_overlap_in_time(served: RunnerEnv) -> None:
    """Both streams produce tokens within the same interval: they are decoded together, not queued."""
    stamps: dict[int, list[float]] = {0: [], 1: []}

    def stream(index: int) -> None:
        body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 48, "stream": True, "ignore_eos": True}
        with requests.post(f"{served.base_url}/v1/completions", json=body, stream=True, timeout=120) as response:
            for line in response.iter_lines():
                if line.startswith(b"data: {"):
                    stamps[index].append(time.monotonic())

    threads = [threading.Thread(target=stream, args=(index,)) for index in stamps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(times) > 10 for times in stamps.values())
    overlap_start = max(times[0] for times in stamps.values())
    overlap_end = min(times[-1] for times in stamps.values())
    assert overlap_start < overlap_end
    assert all(sum(overlap_start <= t <= overlap_end for t in times) > 5 for times in stamps.values())


def worker_pid(served: RunnerEnv) -> int:
    running = requests.get(f"{served.base_url}/engines/ps", timeout=10).json()
    return next(entry["pid"] for entry in running if entry["model_name"].endswith("smollm2"))


def test_a_killed_worker_gives_a_500_and_the_next_request_succeeds(served: RunnerEnv) -> None:
    body = {"model": MODEL, "prompt": "Count to a thousand:", "max_tokens": 400, "ignore_eos": True}
    requests.post(f"{served.base_url}/v1/completions", json={**body, "max_tokens": 1}, timeout=60).raise_for_status()
    pid = worker_pid(served)
    threading.Timer(1.0, os.kill, (pid, signal.SIGKILL)).start()
    crashed = requests.post(f"{served.base_url}/v1/completions", json=body, timeout=120)
    assert error_of(crashed, 500)["code"] == "worker_failed"
    assert requests.get(served.base_url, timeout=5).ok  # the runner itself survived
    again = requests.post(f"{served.base_url}/v1/completions", json={**body, "max_tokens": 4}, timeout=120)
    assert again.status_code == 200, again.text
    assert worker_pid(served) != pid


def test_configured_context_size_holds_after_unload_and_reload(served: RunnerEnv) -> None:
    long_prompt = "word " * 600
    body = {"model": MODEL, "prompt": long_prompt, "max_tokens": 4}
    configured = requests.post(
        f"{served.base_url}/engines/_configure", json={"model": MODEL, "context-size": 256}, timeout=120
    )
    assert configured.status_code == 202, configured.text
    requests.post(f"{served.base_url}/engines/unload", json={"all": True}, timeout=30).raise_for_status()
    refused = requests.post(f"{served.base_url}/v1/completions", json=body, timeout=120)
    assert refused.status_code == 400
    running = requests.get(f"{served.base_url}/engines/ps", timeout=10).json()
    assert [entry["context_size"] for entry in running] == [256]

    requests.post(f"{served.base_url}/engines/_configure", json={"model": MODEL, "context-size": 2048}, timeout=120)
    accepted = requests.post(f"{served.base_url}/v1/completions", json=body, timeout=120)
    assert accepted.status_code == 200, accepted.text


def test_unconfigured_models_get_the_default_context(served: RunnerEnv, smollm2_gguf: Path) -> None:
    """No configure and no packaged context: 4096, under SmolLM2's trained 8192; a packaged one wins."""
    load_model(served.base_url, smollm2_gguf, "ai/smollm2-default")
    load_model(served.base_url, smollm2_gguf, "ai/smollm2-packaged", context_size=1024)
    for name in ("ai/smollm2-default", "ai/smollm2-packaged"):
        body = {"model": name, "prompt": "hi", "max_tokens": 1}
        requests.post(f"{served.base_url}/v1/completions", json=body, timeout=120).raise_for_status()
    running = {
        entry["model_name"]: entry["context_size"] for entry in requests.get(f"{served.base_url}/engines/ps").json()
    }
    assert running["ai/smollm2-default"] == 4096
    assert running["ai/smollm2-packaged"] == 1024
    assert MODEL not in running  # two models fit (the default); the least recently used one was evicted


def test_concurrent_requests_for_a_loading_model_share_one_load(served: RunnerEnv) -> None:
    requests.post(f"{served.base_url}/engines/unload", json={"all": True}, timeout=30).raise_for_status()
    log = served.state_dir.parent / "runner.log"
    loads_before = log.read_text().count(f"loading {MODEL} ")
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 2}
    statuses: list[int] = []

    def send() -> None:
        statuses.append(requests.post(f"{served.base_url}/v1/completions", json=body, timeout=120).status_code)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200, 200]
    assert log.read_text().count(f"loading {MODEL} ") == loads_before + 1


def test_keep_alive_zero_unloads_right_after_use(served: RunnerEnv) -> None:
    configured = requests.post(
        f"{served.base_url}/engines/_configure", json={"model": MODEL, "keep_alive": "0"}, timeout=120
    )
    assert configured.status_code == 202, configured.text
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 2}
    requests.post(f"{served.base_url}/v1/completions", json=body, timeout=120).raise_for_status()
    deadline = time.monotonic() + 15
    while any(entry["model_name"] == MODEL for entry in requests.get(f"{served.base_url}/engines/ps").json()):
        assert time.monotonic() < deadline, "a model with keep-alive 0 stayed loaded"
        time.sleep(0.2)
    requests.post(f"{served.base_url}/engines/_configure", json={"model": MODEL, "keep_alive": "5m"}, timeout=120)


def test_a_model_that_cannot_load_is_a_json_500_and_the_runner_stays_up(served: RunnerEnv, tiny_gguf: Path) -> None:
    load_model(served.base_url, tiny_gguf, "ai/not-a-real-model")  # valid GGUF metadata, no usable weights
    body = {"model": "ai/not-a-real-model", "prompt": "hi", "max_tokens": 1}
    response = requests.post(f"{served.base_url}/v1/completions", json=body, timeout=120)
    assert error_of(response, 500)["message"].startswith("model ai/not-a-real-model failed to load: ")
    assert requests.get(served.base_url, timeout=5).ok


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def test_a_stream_flows_from_the_worker_straight_to_the_client(served: RunnerEnv) -> None:
    """The runner hands the connection over: the stream goes on while the runner process is stopped."""
    body = {"model": MODEL, "prompt": "Count to a thousand:", "max_tokens": 96, "ignore_eos": True, "stream": True}
    with requests.post(f"{served.base_url}/v1/completions", json=body, stream=True, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["connection"] == "close"  # the next request goes back to the runner
        events = (line for line in response.iter_lines() if line.startswith(b"data:"))
        first = next(events)
        runner_pid = parent_pid(worker_pid(served))
        os.kill(runner_pid, signal.SIGSTOP)
        try:
            rest = list(events)
        finally:
            os.kill(runner_pid, signal.SIGCONT)
    assert first.startswith(b"data: {")
    assert rest[-1] == b"data: [DONE]"
    assert len(rest) > 50


def test_one_connection_serves_an_answer_then_the_runner_api(served: RunnerEnv) -> None:
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 4, "temperature": 0}
    with requests.Session() as session:
        answered = session.post(f"{served.base_url}/engines/v1/completions", json=body, timeout=60)
        assert answered.status_code == 200, answered.text
        assert answered.json()["usage"]["completion_tokens"] == 4
        assert session.get(f"{served.base_url}/engines/status", timeout=10).status_code == 200
        again = session.post(f"{served.base_url}/engines/v1/completions", json=body, timeout=60)
        assert again.json()["choices"][0]["text"] == answered.json()["choices"][0]["text"]


def test_a_client_that_leaves_a_stream_frees_the_model(served: RunnerEnv) -> None:
    def in_use() -> bool:
        [entry] = requests.get(f"{served.base_url}/engines/ps", timeout=10).json()
        return entry["in_use"]

    body = {"model": MODEL, "prompt": "Count to a thousand:", "max_tokens": 4000, "ignore_eos": True, "stream": True}
    response = requests.post(f"{served.base_url}/v1/completions", json=body, stream=True, timeout=60)
    lines = response.iter_lines()
    assert next(lines).startswith(b"data:")
    assert in_use()
    response.close()
    # 4000 tokens take over 40 s here; the worker cancels at once, then tells the runner it is done.
    deadline = time.monotonic() + 20
    while in_use() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not in_use()


def test_an_http_1_0_client_gets_a_stream_it_can_read(served: RunnerEnv) -> None:
    """HTTP/1.0 has no chunked bodies (nginx proxies with it by default): the stream ends at the close."""
    body = json.dumps({"model": MODEL, "prompt": "Hi", "max_tokens": 8, "stream": True}).encode()
    head = f"POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as connection:
        connection.sendall(head.encode() + body)
        received = b"".join(iter(lambda: connection.recv(65536), b""))
    headers, _, content = received.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in headers.lower()
    assert content.startswith(b"data: {") and content.endswith(b"data: [DONE]\n\n")


def error_of(response: requests.Response, status: int) -> dict:
    """The error object of a response, checked to have the one shape every route answers with."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and isinstance(error["code"], str)
    return error


def test_every_status_of_the_runner_has_the_one_error_shape(served: RunnerEnv) -> None:
    base = served.base_url
    assert error_of(requests.post(f"{base}/v1/chat/completions", data=b"{", timeout=30), 400)["code"] == (
        "invalid_request"
    )
    unknown = error_of(requests.post(f"{base}/v1/completions", json={"model": "ai/nope", "prompt": "x"}), 404)
    assert (unknown["code"], unknown["param"]) == ("model_not_found", "model")
    assert error_of(requests.get(f"{base}/models/ai/nope", timeout=30), 404)["code"] == "model_not_found"
    assert error_of(requests.get(f"{base}/no/such/route", timeout=30), 404)["code"] == "not_found"
    assert error_of(requests.put(f"{base}/models", timeout=30), 405)["code"] == "method_not_allowed"
    assert error_of(requests.get(base, headers={"Origin": "https://evil.example"}, timeout=30), 403)["code"] == (
        "forbidden"
    )
    too_large = requests.post(f"{base}/v1/completions", data=b" " * (10 * 1024 * 1024 + 1), timeout=30)
    assert error_of(too_large, 413)["code"] == "request_too_large"
    unreachable = requests.post(f"{base}/models/create", json={"from": "127.0.0.1:1/ai/x"}, timeout=60)
    assert error_of(unreachable, 502)["code"] == "upstream_error"
    model_id = requests.get(f"{base}/models/{MODEL}", timeout=30).json()["id"]
    requests.post(f"{base}/models/{MODEL}/tag", params={"repo": "ai/second-name"}, timeout=30).raise_for_status()
    assert error_of(requests.delete(f"{base}/models/{model_id}", timeout=30), 409)["code"] == "conflict"
    requests.delete(f"{base}/models/ai/second-name", timeout=30).raise_for_status()


@pytest.mark.parametrize("prefix", ["/engines/v1", "/engines/llama.cpp/v1", "/v1"])
def test_structured_output_and_tool_calls_through_every_prefix(served: RunnerEnv, prefix: str) -> None:
    client = openai.OpenAI(base_url=f"{served.base_url}{prefix}", api_key="unused", max_retries=0)
    schema = {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}}, "required": ["city"]}
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[SYSTEM, FRANCE],
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema}},
        max_tokens=30,
    )
    assert json.loads(reply.choices[0].message.content or "")["city"] in ("Paris", "Rome")
    tool = {"type": "function", "function": {"name": "capital_of", "parameters": schema}}
    called = client.chat.completions.create(
        model=MODEL,
        messages=[FRANCE],
        tools=[tool],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=100,
        temperature=0,
    )
    [call] = called.choices[0].message.tool_calls or []
    assert call.function.name == "capital_of" and json.loads(call.function.arguments)["city"] in ("Paris", "Rome")
