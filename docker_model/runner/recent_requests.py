"""The recent-requests store behind `GET /engines/requests` (`docker model requests`): per model, the last
KEPT_PER_MODEL inference requests and their answers, in the runner's memory only.

The runner hands each inference request's connection to the model's worker (`handover.py`) and never sees
the answer: the worker keeps the start of the body it wrote and reports it on the hand-over's control
connection when it is done (`shared/wire.py`). Here that becomes a record: a stream of OpenAI chunks
assembled into the one answer it amounts to (as Docker Model Runner shows streams), any other body as text.
Bounded: KEPT_PER_MODEL records a model, BODY_BYTES a body (longer ones are cut and marked so). Secrets
are never kept: no header is stored but the user agent, and in the bodies the values of keys named like a
key, token or password, and the request's own credentials, read REDACTED.

Writing a record's texts (serialising a request, assembling and redacting an answer of up to 2 MiB) takes
milliseconds, so none of it runs on the event loop: a request's text is written when it is answered, in a
thread (`finished`), or, for one still being answered, when the records are served (`snapshot`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from docker_model.api_types import RequestRecord
from docker_model.runner.shared.error_body import dialect_of

if TYPE_CHECKING:
    from starlette.requests import Request

    from docker_model.runner.handover import Reports

KEPT_PER_MODEL = 10  # Docker Model Runner's count
BODY_BYTES = 128 * 1024
FOLLOWER_BACKLOG = 100  # records a slow follower may fall behind by; later ones skip it
REDACTED = "[redacted]"
TEXT_KEYS = ("content", "reasoning_content", "text")  # of a streamed choice, in a chat's delta or a completion's
# A key whose letters, lowercased, end like this holds a secret: `api_key`, `x-api-key`, `hf_token`,
# `aws_secret_access_key`, `passwd`, `cookie`; `max_tokens`, `top_k` and `prompt_cache_key` do not.
SECRET_KEY = re.compile(r"((?<!cache)key|token|secret|password|passwd|credentials?|cookie|authorization)$")
# A request's credential shorter than this is a placeholder (`x`, `none`, `EMPTY`, as local clients send),
# not a secret: scrubbing it from the bodies would rewrite their words.
MIN_SECRET_CHARS = 12


@dataclass
class Record:
    """One request, answered or under way. Its request's text is written once (`request_text`), from
    `payload`, which is dropped then."""

    model_id: str
    entry: RequestRecord
    secrets: tuple[str, ...]  # the request's credentials, redacted from its answer too; dropped then
    payload: dict[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def request_text(self, body_bytes: int) -> None:
        """Write the request's text into the entry, redacted and cut, unless it is written already."""
        with self.lock:
            if self.payload is None:
                return
            text = scrub(json.dumps(redacted(self.payload), ensure_ascii=False), self.secrets)
            self.entry["request"], self.entry["request_truncated"] = cut(text, body_bytes)
            self.payload = None


class RecentRequests:
    """Records by model ID, oldest first, and the queues of the clients following new ones. Used on the
    event loop; the texts are written in threads (`finished`, `snapshot`)."""

    def __init__(self, kept: int = KEPT_PER_MODEL, body_bytes: int = BODY_BYTES) -> None:
        self.kept = kept
        self.body_bytes = body_bytes
        self.models: dict[str, deque[Record]] = {}
        self.followers: set[asyncio.Queue[Record]] = set()
        self.finishing: set[asyncio.Future[dict[str, Any]]] = set()  # records being finished (`finished`)

    def begin(self, model_id: str, request: Request, payload: dict[str, Any]) -> Record:
        """Record a request as it is handed to the worker of `model_id`: `payload` is its body, written as
        text later (`Record.request_text`)."""
        headers, path = request.headers, request.url.path
        started = time.time()
        entry: RequestRecord = {
            "id": f"{model_id}_{time.time_ns()}",
            "model": str(payload.get("model")),
            "method": request.method,
            "url": path,
            "request": "",
            "timestamp": int(started),
            "status_code": 0,
            "duration_ms": None,
            "request_truncated": False,
            "response_truncated": False,
        }
        if agent := headers.get("user-agent"):
            entry["user_agent"] = agent
        if (dialect := dialect_of(path)) != "openai":
            entry["origin"] = dialect
        record = Record(model_id, entry, credentials(headers), payload)
        self.models.setdefault(model_id, deque(maxlen=self.kept)).append(record)
        return record

    async def finished(self, record: Record, report: Reports | None, failure: str | None) -> None:
        """`finish`, its texts written in a thread. A request cancelled meanwhile still has its record
        completed: the work goes on, shielded, and the store holds it until it is done."""
        duration = time.monotonic() - record.started
        work = asyncio.ensure_future(asyncio.to_thread(self.outcome, record, report, failure))
        self.finishing.add(work)

        def done(work: asyncio.Future[dict[str, Any]]) -> None:
            self.finishing.discard(work)
            if not work.cancelled() and work.exception() is None:
                self.complete(record, work.result(), duration)

        work.add_done_callback(done)
        await asyncio.shield(work)

    def finish(self, record: Record, report: Reports | None, failure: str | None) -> None:
        """Complete `record` with what its worker reported (None: the hand-over failed, for `failure`), and
        tell followers."""
        duration = time.monotonic() - record.started
        self.complete(record, self.outcome(record, report, failure), duration)

    def outcome(self, record: Record, report: Reports | None, failure: str | None) -> dict[str, Any]:
        """The fields of a finished record: its request's text written, and its answer's; any thread."""
        record.request_text(self.body_bytes)
        if report is None or not report.done or report.status is None:
            error = failure or "the request ended before the model's worker answered it"
            return {"status_code": 500, "error": json.dumps({"error": error})}
        text = report.response.decode("utf-8", errors="replace")
        complete = report.response_size == len(report.response)
        failed = report.status >= 400
        if complete and (report.content_type or "").startswith("text/event-stream"):
            text, reported = assembled(text)
            failed = failed or reported
        elif complete and (report.content_type or "").startswith("application/json"):
            text = redacted_json(text)
        text, truncated = cut(scrub(text, record.secrets), self.body_bytes, None if complete else report.response_size)
        return {"status_code": report.status, "response_truncated": truncated, "error" if failed else "response": text}

    def complete(self, record: Record, fields: dict[str, Any], duration: float) -> None:
        """Put a finished record's fields in place and tell the followers; on the event loop."""
        record.entry.update(fields)  # type: ignore[typeddict-item]
        record.entry["duration_ms"] = round(duration * 1000, 1)
        record.secrets = ()
        for queue in self.followers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(record)

    def kept_records(self, model_id: str | None = None) -> dict[str, list[Record]]:
        """The records of every model, or of one, by model ID."""
        return {model: list(kept) for model, kept in self.models.items() if model_id is None or model == model_id}

    def records(self, model_id: str | None = None) -> dict[str, list[RequestRecord]]:
        """The entries of every model, or of one, by model ID, each request's text written."""
        kept = self.kept_records(model_id)
        self.write_requests(kept)
        return {model: [record.entry for record in records] for model, records in kept.items()}

    async def snapshot(self, model_id: str | None = None) -> dict[str, list[RequestRecord]]:
        """`records`, served from the event loop: the texts of requests still being answered are written in
        a thread."""
        kept = self.kept_records(model_id)
        await asyncio.to_thread(self.write_requests, kept)
        return {model: [record.entry for record in records] for model, records in kept.items()}

    def write_requests(self, kept: dict[str, list[Record]]) -> None:
        """Write the request texts not written yet (of requests still being answered)."""
        for records in kept.values():
            for record in records:
                record.request_text(self.body_bytes)

    def forget(self, model_id: str) -> None:
        """Drop the records of a model that was deleted."""
        self.models.pop(model_id, None)

    def follow(self) -> asyncio.Queue[Record]:
        """A queue that gets each record as it is answered, until `unfollow`."""
        queue: asyncio.Queue[Record] = asyncio.Queue(FOLLOWER_BACKLOG)
        self.followers.add(queue)
        return queue

    def unfollow(self, queue: asyncio.Queue[Record]) -> None:
        self.followers.discard(queue)


def cut(text: str, limit: int, size: int | None = None) -> tuple[str, bool]:
    """`text` within `limit` bytes, marked with its full size (`size` when more than `text` was sent) when cut."""
    data = text.encode()
    size = max(size or 0, len(data))
    if size <= limit:
        return text, False
    return data[:limit].decode(errors="ignore") + f"...[cut: {size} bytes in all]", True


def credentials(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The secrets a request carries in its headers (a bearer token, an Anthropic-style key). A value shorter
    than MIN_SECRET_CHARS is a placeholder, and `Bearer` alone carries none."""
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    bearer = value.strip() if value else ("" if scheme.lower() in ("bearer", "basic") else scheme)
    found = (bearer, headers.get("x-api-key", "").strip())
    return tuple(secret for secret in found if len(secret) >= MIN_SECRET_CHARS)


def redacted(value: Any) -> Any:
    """`value` with the text of every key named like a secret (`api_key`, `x-api-key`, `hf_token`) redacted.
    Only text is a secret: a tool's parameter schema with a property named `key` (an object) stays readable."""
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(item, str) and SECRET_KEY.search(re.sub(r"[^a-z]", "", str(key).lower()))
            else redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


def redacted_json(text: str) -> str:
    """A JSON body with the values of keys named like secrets redacted (as it came when there are none)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    cleaned = redacted(value)
    return text if cleaned == value else json.dumps(cleaned, ensure_ascii=False)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def assembled(stream: str) -> tuple[str, bool]:
    """An SSE stream of OpenAI chat or text completion chunks as the one completion it amounts to (its keys
    named like secrets redacted), or as it came when it holds anything else (another dialect's events, tool
    calls); and whether it reports an error."""
    chunks = []
    for line in stream.splitlines():
        data = line[5:].strip() if line.startswith("data:") else None
        if not data or data == "[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            return stream, False
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
            return stream, isinstance(chunk, dict) and "error" in chunk
        chunks.append(chunk)
    answer = merged(chunks) if chunks else None
    return (stream, False) if answer is None else (json.dumps(redacted(answer), ensure_ascii=False), False)


def merged(chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Chunks of a completion as the one completion they make; None when a choice's delta holds more than
    text (tool calls: shown as they came)."""
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice.get("delta", {"text": choice.get("text", "")})
            if not isinstance(delta, dict) or {k for k, v in delta.items() if v is not None} - {"role", *TEXT_KEYS}:
                return None
            index = choice.get("index", 0)
            into = choices.setdefault(index, {"index": index, "finish_reason": None})
            for key in TEXT_KEYS:
                if isinstance(delta.get(key), str):
                    into[key] = into.get(key, "") + delta[key]
            into["finish_reason"] = choice.get("finish_reason") or into["finish_reason"]
    chat = chunks[0].get("object") == "chat.completion.chunk"
    if chat:
        for choice in choices.values():
            texts = {key: choice.pop(key) for key in TEXT_KEYS if key in choice}
            choice["message"] = {"role": "assistant", **texts}
    usage = next((chunk["usage"] for chunk in reversed(chunks) if chunk.get("usage")), None)
    answer = {**chunks[0], "object": "chat.completion" if chat else "text_completion"}
    answer["choices"] = [choices[index] for index in sorted(choices)]
    if usage is not None:
        answer["usage"] = usage
    return answer
