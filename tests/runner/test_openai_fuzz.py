"""The runner fuzzed with requests generated from OpenAI's published spec (tests/openai_spec): at least
EXAMPLES per operation, none may get a server error, every 2xx body must be valid against the spec
(streams chunk by chunk), and enough must reach a 2xx that a runner refusing everything cannot pass.

The hook fits each generated request to the local runner: the test model, at most 16 tokens out, at most
2 answers. Everything else is as generated: unknown models in paths, odd sampling values, fields the
runner refuses by name, token-id prompts.
"""

from __future__ import annotations

import os

import pytest
import schemathesis

from tests.fixtures.fuzzing import Fuzzer
from tests.fixtures.runner import RunnerEnv
from tests.openai_spec.conformance import corrected_spec
from tests.runner.conftest import MODEL

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
MAX_TOKENS = 16
MAX_ANSWERS = 2
# operation -> the least share of its requests that must be answered 2xx. The rest are refusals by name of
# what the spec allows and a local text model does not do (audio, `dimensions`, several prompts at once,
# token ids beyond the vocabulary, unknown keys): about a third of chat requests and a fifth of the others
# are answered; these floors leave room for the generator's variance.
LEAST_2XX = {
    "createChatCompletion": 0.2,
    "createCompletion": 0.1,
    "createEmbedding": 0.05,
    "listModels": 1.0,
    "retrieveModel": 0.0,  # generated model names: nearly all unknown, so 404 (and never a 5xx)
}
GENERATING = ("/chat/completions", "/completions")
STREAM_CHUNKS = {
    "createChatCompletion": "CreateChatCompletionStreamResponse",
    "createCompletion": "CreateCompletionStreamResponse",
}


def fit_to_local_model(case: schemathesis.Case) -> None:
    """The hook: the local test model, few tokens, few answers."""
    if not isinstance(case.body, dict):
        return
    body = case.body
    body["model"] = MODEL
    if case.operation.path not in GENERATING:
        return
    caps = [cap for cap in ("max_tokens", "max_completion_tokens") if isinstance(body.get(cap), int)]
    for cap in caps or ["max_tokens"]:
        body[cap] = max(1, min(capped(body.get(cap)), MAX_TOKENS))
    if isinstance(body.get("n"), int):
        body["n"] = max(1, min(capped(body["n"]), MAX_ANSWERS))


def capped(value: object) -> int:
    return value if isinstance(value, int) else MAX_TOKENS


@pytest.fixture(scope="module")
def fuzzer(served: RunnerEnv) -> Fuzzer:
    return Fuzzer(corrected_spec(), f"{served.base_url}/v1", fit_to_local_model, STREAM_CHUNKS)


@pytest.mark.parametrize("operation_id", list(LEAST_2XX))
def test_fuzzed_requests_never_get_a_server_error_or_an_invalid_answer(
    fuzzer: Fuzzer, operation_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tally = fuzzer.run(operation_id, EXAMPLES)
    with capsys.disabled():
        print(f"\n  fuzz {tally.report()}")
    assert tally.statuses[5] == 0
    assert tally.share(2) >= LEAST_2XX[operation_id], tally.report()
    if operation_id != "listModels":  # it takes no input: one request says all
        assert tally.sent >= EXAMPLES, tally.report()
