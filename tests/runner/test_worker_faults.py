"""Faults around a model's worker, on the real runner: a worker that stops making progress is killed and
its client gets an error; a runner killed with SIGKILL leaves no worker behind, and its stale socket
folder is removed by the next runner; a model removed (forced) while it loads or while it answers ends
unloaded and deleted, its client getting a clean end or an error."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.fixtures.runner import RunnerEnv, direct_runner, make_runner_env
from tests.fixtures.waiting import wait_until
from tests.runner.conftest import MODEL, load_model

pytestmark = pytest.mark.integration

LONG_ANSWER = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Count from one to one thousand."}],
    "max_tokens": 3000,
    "ignore_eos": True,
    "stream": True,
}


SHORT_ANSWER = {**LONG_ANSWER, "stream": False, "max_tokens": 2}


def workers_of(runner_pid: int) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(runner_pid).children(recursive=True)
        if "docker_model.runner.worker" in child.cmdline()
    ]


def stream_events(response: requests.Response) -> Iterator[str]:
    for line in response.iter_lines():  # bytes: a decoded line would also be cut at U+0085 or U+2028
        if line.startswith(b"data: "):
            yield line.removeprefix(b"data: ").decode()


def test_a_worker_without_progress_is_killed_and_its_client_told(
    tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> None:
    env = make_runner_env(tmp_path_factory, DOCKER_MODEL_HUNG_WORKER_SECONDS="3")
    with direct_runner(env) as runner:
        load_model(env.base_url, smollm2_gguf, MODEL)
        chat = f"{env.base_url}/v1/chat/completions"
        with requests.post(chat, json=LONG_ANSWER, stream=True, timeout=120) as response:
            events = stream_events(response)
            next(events)
            [worker] = workers_of(runner.pid)
            worker.send_signal(signal.SIGSTOP)  # alive, answering nothing: as a stuck engine looks
            rest = list(events)
        error = json.loads(rest[-1])["error"]
        assert "made no progress for 3 s while answering" in error["message"], rest[-3:]
        assert wait_until(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE)
        again = requests.post(chat, json=SHORT_ANSWER, timeout=120)
        assert again.status_code == 200, again.text  # the model loads again


def socket_folders(pid: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"docker-model-{pid}-*"))


def test_a_killed_runner_leaves_no_worker_and_its_folders_are_cleaned(
    tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path
) -> None:
    env = make_runner_env(tmp_path_factory)
    with direct_runner(env) as runner:
        load_model(env.base_url, smollm2_gguf, MODEL)
        answer = requests.post(
            f"{env.base_url}/v1/chat/completions", json={**LONG_ANSWER, "stream": False, "max_tokens": 2}
        )
        assert answer.status_code == 200
        workers = workers_of(runner.pid)
        assert workers and socket_folders(runner.pid)
        runner.kill()
        runner.wait()
        assert wait_until(lambda: not any(worker.is_running() for worker in workers), 10)
        stale = socket_folders(runner.pid)
        assert stale  # what a SIGKILL leaves
    with direct_runner(env):
        assert not any(folder.exists() for folder in stale)


@pytest.fixture
def removable(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[RunnerEnv]:
    env = make_runner_env(tmp_path_factory)
    with direct_runner(env):
        load_model(env.base_url, smollm2_gguf, MODEL)
        yield env


def gone(env: RunnerEnv) -> bool:
    listed = requests.get(f"{env.base_url}/engines/ps", timeout=30).json()
    stored = requests.get(f"{env.base_url}/models/{MODEL}", timeout=30).status_code
    return not listed and stored == 404


def test_a_model_removed_while_it_answers_ends_unloaded_and_deleted(removable: RunnerEnv) -> None:
    chat = f"{removable.base_url}/v1/chat/completions"
    with requests.post(chat, json=LONG_ANSWER, stream=True, timeout=120) as response:
        events = stream_events(response)
        next(events)
        refused = requests.delete(f"{removable.base_url}/models/{MODEL}", timeout=30)
        assert refused.status_code == 409  # busy: only --force removes it
        forced = requests.delete(f"{removable.base_url}/models/{MODEL}", params={"force": "true"}, timeout=60)
        assert forced.status_code == 200, forced.text
        rest = list(events)
    assert rest and (rest[-1] == "[DONE]" or "error" in json.loads(rest[-1])), rest[-2:]
    assert wait_until(lambda: gone(removable))


def test_a_model_removed_while_it_loads_ends_unloaded_and_deleted(removable: RunnerEnv) -> None:
    answers: list[requests.Response] = []
    asking = threading.Thread(
        target=lambda: answers.append(
            requests.post(
                f"{removable.base_url}/v1/chat/completions",
                json={**LONG_ANSWER, "stream": False, "max_tokens": 2},
                timeout=120,
            )
        )
    )
    asking.start()
    assert wait_until(
        lambda: requests.get(f"{removable.base_url}/engines/ps", timeout=30).json() != [] or not asking.is_alive(), 30
    )
    forced = requests.delete(f"{removable.base_url}/models/{MODEL}", params={"force": "true"}, timeout=60)
    assert forced.status_code == 200, forced.text
    asking.join(120)
    assert answers and answers[0].status_code in (200, 404, 409, 500), answers[0].text
    assert wait_until(lambda: gone(removable))
    assert os.path.exists(removable.models_path)
