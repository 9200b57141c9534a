"""What each model can do, as the real runner shows it: `capabilities` in `GET /models[/{name}]` and the
`dmr` block of OpenAI's model objects (`/v1/models`, read with the openai client), for SmolLM2 and for
tiny GGUF models made to be an embedding model, a tool user, a thinker and a vision model."""

from __future__ import annotations

import io
from pathlib import Path

import openai
import pytest
import requests

from docker_model import distribution
from docker_model.distribution import Artifact
from tests.distribution.test_capabilities import CHATML, TEMPLATES, THINK
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.runner import RunnerEnv

pytestmark = pytest.mark.integration

PACKAGED_CONTEXT = 2048
EXPECTED = {
    "ai/smollm2": ["chat"],
    "ai/embed": ["embeddings"],
    "ai/pooled": ["embeddings"],
    "ai/tools": ["chat", "tools"],
    "ai/tools-layer": ["chat", "tools"],
    "ai/thinker": ["chat", "reasoning"],
    "ai/vision": ["chat", "vision"],
}


def load_artifact(base_url: str, built: Artifact, tag: str) -> dict:
    archive = io.BytesIO()
    distribution.write_model_tar(built, archive)
    answer = requests.post(f"{base_url}/models/load", params={"tag": tag}, data=archive.getvalue(), timeout=120)
    assert answer.status_code == 201, answer.text
    return answer.json()


def artifacts(directory: Path, smollm2: Path) -> dict[str, Artifact]:
    hermes = (TEMPLATES / "hermes_tools.jinja").read_text()
    template = directory / "tools.jinja"
    template.write_text(hermes)
    chat = write_gguf(directory / "chat.gguf", seed=5, chat_template=CHATML)
    return {
        "ai/smollm2": distribution.package(smollm2, context_size=PACKAGED_CONTEXT),
        "ai/embed": distribution.package(write_gguf(directory / "bert.gguf", seed=1, architecture="bert")),
        "ai/pooled": distribution.package(write_gguf(directory / "pooled.gguf", seed=2, pooling_type=1)),
        "ai/tools": distribution.package(write_gguf(directory / "tools.gguf", seed=3, chat_template=hermes)),
        "ai/tools-layer": distribution.package(chat, chat_template=template),
        "ai/thinker": distribution.package(write_gguf(directory / "think.gguf", seed=4, chat_template=THINK)),
        "ai/vision": distribution.package(chat, mmproj=write_gguf(directory / "mmproj.gguf", architecture="clip")),
    }


@pytest.fixture(scope="module")
def loaded(runner: RunnerEnv, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One model of each kind in the module's runner: the answers of `POST /models/load`, by tag."""
    built = artifacts(tmp_path_factory.mktemp("capable"), smollm2_gguf)
    return {tag: load_artifact(runner.base_url, model, tag) for tag, model in built.items()}


def dmr(model: openai.types.Model) -> dict:
    """The `dmr` block: a field OpenAI's schema does not name, kept by the client as an extra."""
    assert model.model_extra is not None
    return model.model_extra["dmr"]


def short(tag: str) -> str:
    """`docker.io/ai/x:latest` -> `ai/x`."""
    return tag.removeprefix("docker.io/").removesuffix(":latest")


def test_a_stored_model_says_what_it_can_do(runner: RunnerEnv, loaded: dict[str, dict]) -> None:
    assert {short(info["tags"][0]): info["capabilities"] for info in loaded.values()} == EXPECTED
    listed = requests.get(f"{runner.base_url}/models", timeout=30).json()
    assert {short(info["tags"][0]): info["capabilities"] for info in listed} == EXPECTED
    for name, capabilities in EXPECTED.items():
        answer = requests.get(f"{runner.base_url}/models/docker.io/{name}:latest", timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["capabilities"] == capabilities


@pytest.mark.parametrize("prefix", ["/engines/v1", "/engines/llama.cpp/v1", "/v1"])
def test_openai_model_objects_carry_the_dmr_block(runner: RunnerEnv, loaded: dict[str, dict], prefix: str) -> None:
    client = openai.OpenAI(base_url=f"{runner.base_url}{prefix}", api_key="unused")
    models = {model.id.removesuffix(":latest"): model for model in client.models.list()}
    assert {name: dmr(model)["capabilities"] for name, model in models.items()} == EXPECTED
    smollm2 = client.models.retrieve("ai/smollm2")
    assert smollm2.owned_by == "docker"
    config = loaded["ai/smollm2"]["config"]
    assert dmr(smollm2) == {  # DMR's names, the config's values
        "context_window": PACKAGED_CONTEXT,
        "architecture": "llama",
        "parameters": config["parameters"],
        "quantization": "Q4_1",
        "size": config["size"],
        "capabilities": ["chat"],
    }
    assert config["parameters"].endswith("M") and config["size"].endswith("MiB")
    assert "context_window" not in dmr(models["ai/embed"])  # none packaged
