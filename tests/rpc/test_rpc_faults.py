"""Faults of a pool of RPC servers under the real runner, SmolLM2's layers on two servers each on a machine of
its own (a network namespace): a server killed mid-answer, and one gone silent (its machine's link down), each
end the stream with an error within the issue's 10 s, the runner stays up, and once the server is back the next
request loads the model again and succeeds. A closed port, a server another client holds and a server of another
protocol version are each refused at load with an error naming the endpoint and the reason."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from docker_model.rpc_protocol import Endpoint, RpcError, probe
from tests.fixtures.netns import OtherMachine, other_machine
from tests.fixtures.registry import free_port
from tests.fixtures.rpc_servers import RpcServer, rpc_server
from tests.fixtures.runner import RunnerEnv
from tests.fixtures.waiting import wait_until
from tests.runner.conftest import load_model

pytestmark = pytest.mark.integration

MODEL = "ai/smollm2"
FAULT_SECONDS = 10  # the bound: a peer that dies or goes silent ends the stream within 10 s
LONG_ANSWER = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Count from one to one thousand."}],
    "max_tokens": 3000,
    "ignore_eos": True,
    "temperature": 0,
    "stream": True,
}
SHORT_ANSWER = {**LONG_ANSWER, "stream": False, "max_tokens": 4}


@dataclass
class Pool:
    """Two machines with an rpc-server each; a server can be started again after a fault."""

    machines: list[OtherMachine]
    servers: list[RpcServer]
    workdir: Path
    running: ExitStack

    @property
    def spec(self) -> str:
        return ",".join(server.endpoint.address for server in self.servers)

    def start(self, index: int) -> None:
        machine = self.machines[index]
        server = rpc_server(self.workdir, machine.address, machine=machine)
        self.servers[index : index + 1] = [self.running.enter_context(server)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    with ExitStack() as running:
        machines = [running.enter_context(other_machine()) for _ in range(2)]
        pool = Pool(machines, [], tmp_path_factory.mktemp("rpc-servers"), running)
        pool.servers = [running.enter_context(rpc_server(pool.workdir, m.address, machine=m)) for m in machines]
        yield pool


@pytest.fixture(scope="module")
def pooled(runner: RunnerEnv, smollm2_gguf: Path, pool: Pool) -> RunnerEnv:
    """The module's runner with SmolLM2 configured (and so loaded) over the pool."""
    load_model(runner.base_url, smollm2_gguf, MODEL)
    configured = configure_pool(runner, pool.spec)
    assert configured.status_code == 202, configured.text
    return runner


def events_of(response: requests.Response) -> Iterator[str]:
    for line in response.iter_lines():
        if line.startswith(b"data: "):
            yield line.removeprefix(b"data: ").decode()


def stream_through(env: RunnerEnv, fault: Callable[[], None]) -> tuple[list[str], float]:
    """Start a long streamed answer, cause `fault` after its first event; the events after it, and the seconds
    from the fault to the stream's end."""
    with requests.post(f"{env.base_url}/engines/v1/chat/completions", json=LONG_ANSWER, stream=True, timeout=120) as r:
        assert r.status_code == 200, r.text
        events = events_of(r)
        next(events)
        fault()
        started = time.monotonic()
        rest = list(events)
        return rest, time.monotonic() - started


def assert_ended_with_an_error(rest: list[str], elapsed: float, pool: Pool) -> None:
    errors = [json.loads(event)["error"] for event in rest if event != "[DONE]" and "error" in json.loads(event)]
    assert errors, rest[-3:]
    message = errors[-1]["message"]
    assert any(server.endpoint.address in message for server in pool.servers), message  # names the pool
    assert elapsed <= FAULT_SECONDS, f"the stream ended {elapsed:.1f} s after the fault: {message}"


def assert_runner_up(env: RunnerEnv) -> None:
    for route in ("/engines/status", "/models"):
        assert requests.get(env.base_url + route, timeout=30).status_code == 200, route


def assert_next_request_succeeds(env: RunnerEnv) -> None:
    answer = requests.post(f"{env.base_url}/engines/v1/chat/completions", json=SHORT_ANSWER, timeout=300)
    assert answer.status_code == 200, answer.text  # the model loaded again over the pool


def answers_probe(endpoint: Endpoint) -> bool:
    try:
        probe(endpoint, timeout=2)
    except RpcError:
        return False
    return True


def test_a_server_killed_mid_stream_ends_it_with_an_error(pooled: RunnerEnv, pool: Pool) -> None:
    try:
        rest, elapsed = stream_through(pooled, pool.servers[1].kill)
    finally:
        pool.start(1)  # the same address: the pool as configured is whole again
    assert_ended_with_an_error(rest, elapsed, pool)
    assert_runner_up(pooled)
    assert_next_request_succeeds(pooled)


def test_a_server_gone_silent_mid_stream_ends_it_with_an_error(pooled: RunnerEnv, pool: Pool) -> None:
    machine, server = pool.machines[0], pool.servers[0]
    try:
        rest, elapsed = stream_through(pooled, lambda: machine.set_link(False))
    finally:
        machine.set_link(True)
    assert_ended_with_an_error(rest, elapsed, pool)
    assert_runner_up(pooled)
    # The server learns that its client is gone only from its own side of the connection.
    assert wait_until(lambda: answers_probe(server.endpoint), 60), (
        f"{server.endpoint.address} never freed:\n{server.log()}"
    )
    assert_next_request_succeeds(pooled)


def configure_pool(env: RunnerEnv, spec: str) -> requests.Response:
    return requests.post(f"{env.base_url}/engines/_configure", json={"model": MODEL, "rpc": spec}, timeout=120)


def assert_load_refused(answer: requests.Response, endpoint: str, reason: str) -> None:
    assert answer.status_code in (502, 503), answer.text
    message = answer.json()["error"]["message"]
    assert endpoint in message and reason in message, message


def test_a_closed_port_is_refused_at_load(pooled: RunnerEnv) -> None:
    closed = f"127.0.0.1:{free_port()}"
    assert_load_refused(configure_pool(pooled, closed), closed, "unreachable")
    assert_runner_up(pooled)


def test_a_server_held_by_another_client_is_refused_at_load(
    pooled: RunnerEnv, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with rpc_server(tmp_path_factory.mktemp("held"), port=free_port()) as server:
        holder = socket.create_connection((server.endpoint.host, server.endpoint.port))  # the one client it serves
        with holder:
            assert_load_refused(
                configure_pool(pooled, server.endpoint.address), server.endpoint.address, "another client"
            )


def test_a_server_of_another_protocol_version_is_refused_at_load(pooled: RunnerEnv) -> None:
    from tests.fixtures.rpc_fixtures import wrong_version_server

    with wrong_version_server() as address:
        assert_load_refused(configure_pool(pooled, address), address, "protocol")
