"""Malformed and oversized requests against the real runner: numbers that are not numbers, nesting past
the limit, too many stop strings or embedding inputs. Each is a 400 naming the problem in the route's
dialect, never a 500, and the runner answers the next request as before."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.runner import RunnerEnv
from tests.runner.conftest import MODEL

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Say hi"}]


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'"max_tokens": 1' + b"0" * 30, "max_tokens: Input should be an integer that fits in 64 bits"),
        (b'"seed": -1' + b"0" * 30, "seed: Input should be an integer that fits in 64 bits"),
        (b'"temperature": NaN', "NaN and Infinity are not JSON numbers"),
        (b'"top_p": Infinity', "NaN and Infinity are not JSON numbers"),
        (b'"top_n_sigma": 1e400', "top_n_sigma: Input should be a finite number"),
        (b'"max_tokens": true', "max_tokens: Input should be a number, not a boolean"),
        (b'"metadata": ' + b"[" * 300 + b"]" * 300, "nests JSON too deeply: the limit is 200 levels"),
        (b'"metadata": ' + b"[" * 100000 + b"]" * 100000, "nests JSON too deeply"),
    ],
)
def test_malformed_numbers_and_deep_nesting_are_400s(served: RunnerEnv, raw: bytes, says: str) -> None:
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}], %s}' % (MODEL.encode(), raw)
    answer = requests.post(f"{served.base_url}/v1/chat/completions", data=body, timeout=60)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"]["message"]


def test_other_dialects_refuse_them_in_their_own_shape(served: RunnerEnv) -> None:
    ollama = requests.post(f"{served.base_url}/api/chat", data=b'{"model": "x", "options": {"seed": NaN}}')
    assert ollama.status_code == 400 and "NaN" in ollama.json()["error"]
    anthropic = requests.post(f"{served.base_url}/v1/messages", data=b'{"max_tokens": 1' + b"0" * 30 + b"}")
    assert anthropic.status_code == 400 and anthropic.json()["type"] == "error"


def test_stop_strings_and_embedding_inputs_are_bounded(served: RunnerEnv) -> None:
    chat = f"{served.base_url}/v1/chat/completions"
    many = requests.post(chat, json={"model": MODEL, "messages": MESSAGES, "stop": ["x"] * 17}, timeout=60)
    assert many.status_code == 400 and "at most 16 stop strings" in many.json()["error"]["message"]
    long = requests.post(chat, json={"model": MODEL, "messages": MESSAGES, "stop": "x" * 513}, timeout=60)
    assert long.status_code == 400 and "at most 512 characters" in long.json()["error"]["message"]
    embeddings = f"{served.base_url}/v1/embeddings"
    inputs = requests.post(embeddings, json={"model": MODEL, "input": ["a"] * 2049}, timeout=60)
    assert inputs.status_code == 400 and inputs.json()["error"]["param"] == "input"
    assert "at most 2048 inputs" in inputs.json()["error"]["message"]
    fine = requests.post(chat, json={"model": MODEL, "messages": MESSAGES, "max_tokens": 4, "stop": ["\n"] * 16})
    assert fine.status_code == 200, fine.text


def test_a_broken_model_archive_is_a_client_error(served: RunnerEnv) -> None:
    load = f"{served.base_url}/models/load"
    garbage = requests.post(load, data=b"not a tar at all" * 100, timeout=60)
    assert garbage.status_code == 400, garbage.text
    assert garbage.json()["error"]["message"].startswith("the model archive was refused:")
