"""The recent-requests store (`runner/recent_requests.py`) on its own, fed as the hand-over feeds it: its
bounds, its redaction and how it shows streamed answers. Through the real runner and docker CLI:
tests/cli/test_requests_bench.py."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from starlette.requests import Request

from docker_model.api_types import RequestRecord
from docker_model.runner import recent_requests
from docker_model.runner.api.access import is_inference
from docker_model.runner.handover import Reports, read_reports
from docker_model.runner.recent_requests import REDACTED, RecentRequests, Record
from docker_model.runner.shared.wire import REPORT_DONE, REPORT_STARTED, response_report


def request(path: str = "/engines/v1/chat/completions", **headers: str) -> Request:
    raw = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "POST", "path": path, "headers": raw, "query_string": b""})


def chat(content: str, **fields: Any) -> dict[str, Any]:
    return {"model": "ai/smollm2", "messages": [{"role": "user", "content": content}], **fields}


def answered(
    store: RecentRequests, record: Record, body: bytes, status: int = 200, kind: str = "application/json"
) -> RequestRecord:
    store.finish(record, Reports(status, kind, True, body, len(body)), "worker died")
    return record.entry


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


def test_only_the_newest_requests_of_each_model_are_kept() -> None:
    store = RecentRequests(kept=3)
    for number in range(5):
        answered(store, store.begin("sha256:a", request(), chat(f"question {number}")), b"{}")
    store.begin("sha256:b", request(), chat("other model"))
    kept = store.records("sha256:a")["sha256:a"]
    questions = [json.loads(entry["request"])["messages"][0]["content"] for entry in kept]
    assert questions == ["question 2", "question 3", "question 4"]
    assert set(store.records()) == {"sha256:a", "sha256:b"}
    assert store.records("sha256:b")["sha256:b"][0]["status_code"] == 0  # still being answered


def test_bodies_over_the_cut_are_cut_and_marked() -> None:
    store = RecentRequests(body_bytes=1000)
    record = store.begin("sha256:a", request(), chat("x" * 5000))
    entry = answered(store, record, b"y" * 3000)
    assert entry["request_truncated"] and entry["response_truncated"]
    assert entry["request"].endswith(f"...[cut: {len(json.dumps(chat('x' * 5000)))} bytes in all]")
    assert entry["response"] == "y" * 1000 + "...[cut: 3000 bytes in all]"
    # A body the worker sent more of than it kept is marked with the size it sent.
    record = store.begin("sha256:a", request(), chat("short"))
    store.finish(record, Reports(200, "application/json", True, b"z" * 10, 10**7), None)
    assert record.entry["response"] == "z" * 10 + f"...[cut: {10**7} bytes in all]"
    assert record.entry["response_truncated"] and not record.entry["request_truncated"]


ONE, TWO = "sk-one-0123456789", "sk-two-0123456789"  # credentials as long as real ones


def test_secrets_are_never_kept() -> None:
    store = RecentRequests()
    body = chat(f"my key is {ONE} and {TWO}", api_key="sk-three", metadata={"X-Api-Key": "sk-four", "max_tokens": 3})
    record = store.begin("sha256:a", request(authorization=f"Bearer {ONE}", x_api_key=TWO), body)
    entry = answered(store, record, f'{{"echo": "{ONE}", "password": "hunter2"}}'.encode())
    text = json.dumps(entry)
    for secret in (ONE, TWO, "sk-three", "sk-four"):
        assert secret not in text
    assert json.loads(entry["request"])["metadata"] == {"X-Api-Key": REDACTED, "max_tokens": 3}
    assert json.loads(entry["response"]) == {"echo": REDACTED, "password": REDACTED}
    assert "authorization" not in text.lower()


@pytest.mark.parametrize("authorization", ["Bearer x", "Bearer none", "Bearer EMPTY", "Bearer", "Bearer ", "e"])
def test_placeholder_credentials_rewrite_no_words(authorization: str) -> None:
    """Local clients send `x`, `none` or `EMPTY` as their key: too short to be a secret, so the words that
    contain them stay as they are, and so does the word Bearer."""
    store = RecentRequests()
    body = chat("explain xml, then none of the Bearer words", tool_choice="none")
    entry = answered(store, store.begin("sha256:a", request(authorization=authorization), body), b'{"echo": "xml"}')
    assert json.loads(entry["request"]) == body and json.loads(entry["response"]) == {"echo": "xml"}


def test_keys_ending_like_a_secret_are_redacted_and_counts_are_not() -> None:
    secrets = [
        "hf_token", "secret_key", "openai_api_key", "aws_secret_access_key", "github_token", "id_token",
        "passwd", "credentials", "credential", "cookie", "Authorization", "X-Api-Key", "refresh-token", "token",
    ]  # fmt: skip
    plain = ["max_tokens", "num_tokens", "max_completion_tokens", "top_k", "top_p", "prompt_cache_key", "keys"]
    body = {"model": "m", **dict.fromkeys(secrets, "s3cr3t"), **dict.fromkeys(plain, 7)}
    kept = json.loads(answered(RecentRequests(), RecentRequests().begin("sha256:a", request(), body), b"{}")["request"])
    assert kept == {"model": "m", **dict.fromkeys(secrets, REDACTED), **dict.fromkeys(plain, 7)}


def test_a_tool_schema_with_a_property_named_like_a_secret_stays_readable() -> None:
    schema = {"type": "object", "properties": {"key": {"type": "string"}, "primary_key": {"type": "integer"}}}
    tool = {"type": "function", "function": {"name": "lookup", "parameters": schema}}
    body = {"model": "m", "tools": [tool], "api_key": "s3cr3t-s3cr3t"}
    kept = json.loads(answered(RecentRequests(), RecentRequests().begin("sha256:a", request(), body), b"{}")["request"])
    assert kept == {"model": "m", "tools": [tool], "api_key": REDACTED}


def test_a_stream_of_chat_chunks_is_shown_as_the_answer_it_makes() -> None:
    store = RecentRequests()
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "ai/smollm2"}
    stream = sse(
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}}]},
        {**head, "choices": [{"index": 0, "delta": {"reasoning_content": "hm"}, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "Par"}, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "is"}, "finish_reason": "stop"}]},
        {**head, "choices": [], "usage": {"completion_tokens": 2}},
    )
    entry = answered(
        store, store.begin("sha256:a", request(), chat("q", stream=True)), stream, 200, "text/event-stream"
    )
    answer = json.loads(entry["response"])
    assert answer["object"] == "chat.completion" and answer["usage"] == {"completion_tokens": 2}
    message = {"role": "assistant", "content": "Paris", "reasoning_content": "hm"}
    assert answer["choices"] == [{"index": 0, "finish_reason": "stop", "message": message}]


def test_streams_it_cannot_assemble_are_kept_as_they_came() -> None:
    store = RecentRequests()
    head = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]}
    tools = sse(head)
    entry = answered(store, store.begin("sha256:a", request(), chat("q")), tools, 200, "text/event-stream")
    assert entry["response"] == tools.decode()
    failed = b'data: {"error": {"message": "generation failed"}}\n\n'
    entry = answered(store, store.begin("sha256:a", request(), chat("q")), failed, 200, "text/event-stream")
    assert entry["error"] == failed.decode() and "response" not in entry
    anthropic = b'event: message_start\ndata: {"type": "message_start"}\n\n'
    path = "/v1/messages"
    entry = answered(store, store.begin("sha256:a", request(path), chat("q")), anthropic, 200, "text/event-stream")
    assert entry["response"] == anthropic.decode() and entry["origin"] == "anthropic"


def test_errors_and_a_dead_worker_are_recorded_as_errors() -> None:
    store = RecentRequests()
    entry = answered(store, store.begin("sha256:a", request(), chat("q")), b'{"error": "bad"}', 400)
    assert entry["status_code"] == 400 and entry["error"] == '{"error": "bad"}'
    record = store.begin("sha256:a", request(), chat("q"))
    store.finish(record, Reports(200, "text/event-stream", False), "the worker was killed")
    assert record.entry["status_code"] == 500
    assert json.loads(record.entry["error"]) == {"error": "the worker was killed"}


def test_followers_get_each_request_as_it_is_answered() -> None:
    async def follow() -> list[str]:
        store = RecentRequests()
        queue = store.follow()
        record = store.begin("sha256:a", request(), chat("q"))
        assert queue.empty()  # not before it is answered
        answered(store, record, b"{}")
        store.unfollow(queue)
        answered(store, store.begin("sha256:a", request(), chat("later")), b"{}")
        return [queue.get_nowait().entry["id"] for _ in range(queue.qsize())]

    assert len(asyncio.run(follow())) == 1


def test_the_worker_reports_the_start_of_its_answer_on_the_wire() -> None:
    async def scenario(*reports: bytes) -> Reports:
        reader = asyncio.StreamReader()
        reader.feed_data(b"".join(reports))
        reader.feed_eof()
        return await read_reports(reader)

    started = REPORT_STARTED + b" 200 application/json\n"
    whole = asyncio.run(scenario(started, response_report(5000, b"{\n}"), REPORT_DONE + b"\n"))
    assert whole == Reports(200, "application/json", True, b"{\n}", 5000)
    cut = asyncio.run(scenario(started, response_report(5000, b"{\n}")[:-1]))  # the worker died mid-report
    assert not cut.done and cut.status == 200


def test_the_requests_route_needs_the_token_where_management_does() -> None:
    assert not is_inference("/engines/requests")


def test_texts_are_written_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serialising a request and assembling an answer of up to 2 MiB take milliseconds: never on the event
    loop, neither when the answer is done nor when the records are served."""
    writers: list[str] = []
    for name in ("redacted", "assembled"):
        original = getattr(recent_requests, name)

        def spy(*args: Any, original: Any = original, name: str = name) -> Any:
            writers.append(f"{name} in {'the loop' if threading.current_thread() is loop_thread else 'a thread'}")
            return original(*args)

        monkeypatch.setattr(recent_requests, name, spy)

    async def scenario() -> dict[str, list[RequestRecord]]:
        store = RecentRequests()
        store.begin("sha256:a", request(), chat("still being answered"))
        answering = store.begin("sha256:a", request(), chat("q", stream=True))
        assert writers == []  # nothing written as the request is handed over
        stream = sse({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]})
        report = Reports(200, "text/event-stream", True, stream, len(stream))
        await store.finished(answering, report, None)
        assert json.loads(answering.entry["response"])["choices"][0]["message"]["content"] == "hi"
        return await store.snapshot("sha256:a")

    loop_thread = threading.current_thread()  # asyncio.run runs the loop in this thread
    served = asyncio.run(scenario())
    assert [json.loads(entry["request"])["messages"][0]["content"] for entry in served["sha256:a"]] == [
        "still being answered",
        "q",
    ]
    assert writers and all(writer.endswith("in a thread") for writer in writers), writers


def test_a_record_is_completed_when_its_request_is_cancelled_meanwhile() -> None:
    async def scenario() -> RequestRecord:
        store = RecentRequests()
        record = store.begin("sha256:a", request(), chat("q"))
        finishing = asyncio.ensure_future(
            store.finished(record, Reports(200, "application/json", True, b"{}", 2), None)
        )
        await asyncio.sleep(0)
        finishing.cancel()
        while store.finishing:
            await asyncio.sleep(0.01)
        return record.entry

    entry = asyncio.run(scenario())
    assert (entry["status_code"], entry["response"]) == (200, "{}")


def test_a_deleted_models_records_go() -> None:
    store = RecentRequests()
    answered(store, store.begin("sha256:a", request(), chat("q")), b"{}")
    answered(store, store.begin("sha256:b", request(), chat("q")), b"{}")
    store.forget("sha256:a")
    store.forget("sha256:never-recorded")
    assert set(store.records()) == {"sha256:b"}
