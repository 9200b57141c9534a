"""SmolLM2 spread over two RPC servers, each on a machine of its own (a network namespace joined to this one by a
veth pair), by the real runner configured with `docker model configure --rpc A,B`: the same greedy answer as the
model loaded locally, a share on each server (and a 1:3 `--tensor-split` honoured), the weights seen crossing the
links, and offers too small refused with the numbers. One pooled load serves most tests (module fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from docker_model.units import human_bytes, parse_bytes
from tests.fixtures.docker_cli import DockerCLI
from tests.fixtures.netns import OtherMachine, other_machine
from tests.fixtures.rpc_servers import RpcServer, rpc_server
from tests.fixtures.runner import RunnerEnv
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

MODEL = "ai/smollm2"
GREEDY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Name three rivers of Europe and say where each one flows."}],
    "max_tokens": 32,
    "ignore_eos": True,
    "temperature": 0,
    "seed": 42,
    "logprobs": True,
    "top_logprobs": 2,
}


@pytest.fixture(scope="module")
def machines() -> Iterator[tuple[OtherMachine, OtherMachine]]:
    with other_machine() as first, other_machine() as second:
        yield first, second


@pytest.fixture(scope="module")
def servers(
    machines: tuple[OtherMachine, OtherMachine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RpcServer, RpcServer]]:
    """An rpc-server on each machine, bound (with --allow-remote) to that machine's address, cache empty."""
    workdir = tmp_path_factory.mktemp("rpc-servers")
    first, second = machines
    with (
        rpc_server(workdir, first.address, machine=first) as on_first,
        rpc_server(workdir, second.address, machine=second) as on_second,
    ):
        yield on_first, on_second


def greedy_answer(env: RunnerEnv) -> list[dict[str, Any]]:
    """The greedy answer's tokens, each with its log probability and the two likeliest alternatives."""
    response = requests.post(f"{env.base_url}/engines/v1/chat/completions", json=GREEDY, timeout=300)
    assert response.status_code == 200, response.text
    content: list[dict[str, Any]] = response.json()["choices"][0]["logprobs"]["content"]
    assert len(content) == GREEDY["max_tokens"], content
    return content


def running_model(env: RunnerEnv) -> dict[str, Any]:
    [model] = requests.get(f"{env.base_url}/engines/ps", timeout=30).json()
    return model


def measured_shares(env: RunnerEnv) -> list[dict[str, Any]]:
    """ps's `rpc` list once the worker has reported what it allocated on every server."""
    assert wait_until(lambda: all(share["measured"] for share in running_model(env)["rpc"]), 30), running_model(env)
    return running_model(env)["rpc"]


def margin(token: dict[str, Any]) -> str:
    """How far the likeliest token led the next one (a difference of log probabilities is one of logits)."""
    first, second = sorted(token["top_logprobs"], key=lambda alternative: -alternative["logprob"])[:2]
    return f"{first['token']!r} led {second['token']!r} by {first['logprob'] - second['logprob']:.4f}"


@dataclass
class Pooled:
    local: list[dict[str, Any]]  # the greedy answer with the model in the runner's own worker
    answer: list[dict[str, Any]]  # the same, with its layers on the two servers
    received: list[int]  # bytes each machine's end of its link received while the pooled model loaded
    servers: tuple[RpcServer, RpcServer]


@pytest.fixture(scope="module")
def pooled(
    model_cli: DockerCLI,
    runner_env: RunnerEnv,
    smollm2_gguf: Path,
    machines: tuple[OtherMachine, OtherMachine],
    servers: tuple[RpcServer, RpcServer],
) -> Pooled:
    packaged = model_cli.run("model", "package", "--gguf", str(smollm2_gguf), MODEL)
    assert packaged.returncode == 0, packaged.stderr
    local = greedy_answer(runner_env)
    before = [machine.link_bytes()[0] for machine in machines]
    pool = ",".join(server.endpoint.address for server in servers)
    configured = model_cli.run("model", "configure", "--rpc", pool, MODEL)  # loads it over the pool
    assert configured.returncode == 0, configured.stderr + "\n".join(server.log() for server in servers)
    received = [machine.link_bytes()[0] - start for machine, start in zip(machines, before, strict=True)]
    return Pooled(local, greedy_answer(runner_env), received, servers)


def test_the_pooled_model_answers_as_the_local_one(pooled: Pooled) -> None:
    local = [token["token"] for token in pooled.local]
    answer = [token["token"] for token in pooled.answer]
    differs = next((index for index, pair in enumerate(zip(local, answer, strict=True)) if pair[0] != pair[1]), None)
    assert differs is None, (
        f"token {differs} differs: locally {margin(pooled.local[differs])}; pooled {margin(pooled.answer[differs])}\n"
        f"local:  {''.join(local)!r}\npooled: {''.join(answer)!r}"
    )


def test_each_server_holds_a_share_estimated_and_measured(pooled: Pooled, runner_env: RunnerEnv) -> None:
    shares = measured_shares(runner_env)
    assert [share["endpoint"] for share in shares] == [server.endpoint.address for server in pooled.servers]
    for share in shares:
        assert share["fraction"] > 0 and share["estimated"] > 0, share
        assert share["model_bytes"] > 0 and share["context_bytes"] > 0, share  # layers and their KV cache
        assert share["measured"] >= share["model_bytes"] + share["context_bytes"], share


def test_the_weights_crossed_the_links(pooled: Pooled, runner_env: RunnerEnv, smollm2_gguf: Path) -> None:
    """What each machine's link received while the model loaded covers what the worker placed there (the
    servers' tensor caches were empty), and together most of the model file (the token embeddings stay in the
    worker, on its CPU, as llama.cpp keeps its input layer)."""
    size = smollm2_gguf.stat().st_size
    for received, share in zip(pooled.received, measured_shares(runner_env), strict=True):
        assert received >= share["model_bytes"], (received, share)
    assert sum(pooled.received) >= size // 2, (pooled.received, size)


def test_a_one_to_three_split_gives_shares_near_that_ratio(
    pooled: Pooled, model_cli: DockerCLI, runner_env: RunnerEnv
) -> None:
    pool = ",".join(server.endpoint.address for server in pooled.servers)
    configured = model_cli.run("model", "configure", "--rpc", pool, MODEL, "--", "--tensor-split", "1,3")
    assert configured.returncode == 0, configured.stderr
    first, second = measured_shares(runner_env)
    assert first["fraction"] == pytest.approx(0.25, abs=0.01), first
    # Each layer's KV cache lies with the layer, all the same size: whole layers, 7 or 8 of SmolLM2's 30.
    layers = first["context_bytes"] / (first["context_bytes"] + second["context_bytes"])
    assert layers == pytest.approx(0.25, abs=0.05), (first, second)
    assert first["model_bytes"] < second["model_bytes"] / 2, (first, second)  # the output layer adds to the last


def test_offers_too_small_are_refused_with_the_numbers(pooled: Pooled, model_cli: DockerCLI) -> None:
    small = "16M"
    pool = ",".join(f"{server.endpoint.address}@{small}" for server in pooled.servers)
    refused = model_cli.run("model", "configure", "--rpc", pool, MODEL)
    assert refused.returncode != 0
    message = refused.stderr
    assert len(message.strip().splitlines()) == 1, message  # one line, no traceback
    for server in pooled.servers:
        assert server.endpoint.address in message, message
    assert human_bytes(parse_bytes(small)) in message, message  # each offer, and what the model needs
