"""The capability rules (`distribution/capabilities.py`) on templates and metadata of real model families,
and on stored models: the template layer wins over the GGUF's, the GGUF header stands in for a config
without metadata, and each model is worked out once."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from docker_model.distribution import Store, artifact, package
from docker_model.distribution.capabilities import derive, gguf_templates, stored_capabilities
from docker_model.distribution.gguf_header import GGUFHeader
from docker_model.distribution.packaging import layer_from_file
from tests.fixtures.gguf_files import write_gguf

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
CHATML = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
# As Qwen3's template: thinking switched by `enable_thinking`, earlier reasoning in `reasoning_content`.
THINK = (
    "{% for m in messages %}{% if m.reasoning_content %}<think>{{ m.reasoning_content }}</think>{% endif %}"
    "{{ m.content }}{% endfor %}{% if enable_thinking is false %}<think>\n\n</think>{% endif %}"
)
# As DeepSeek-R1's distills: earlier answers lose their reasoning; nothing else says so.
STRIPS_THINKING = "{% for m in messages %}{{ m['content'].split('</think>')[-1] }}{% endfor %}"
MENTIONS_TOOLS_IN_TEXT = "You are a helpful assistant with no tools.{% for m in messages %}{{ m.content }}{% endfor %}"


@pytest.mark.parametrize(
    ("metadata", "templates", "layers", "expected"),
    [
        ({"general.architecture": "llama"}, [CHATML], [], ["chat"]),
        ({"general.architecture": "llama"}, [], [], ["chat"]),  # llama.cpp's default template then
        ({"general.architecture": "bert"}, [], [], ["embeddings"]),
        ({"general.architecture": "nomic-bert", "nomic-bert.pooling_type": "1"}, [], [], ["embeddings"]),
        ({"general.architecture": "qwen3", "qwen3.pooling_type": "3"}, [], [], ["embeddings"]),
        ({"general.architecture": "qwen3", "qwen3.pooling_type": "3"}, [CHATML], [], ["chat"]),
        ({"general.architecture": "llama"}, [(TEMPLATES / "hermes_tools.jinja").read_text()], [], ["chat", "tools"]),
        ({"general.architecture": "llama"}, [(TEMPLATES / "llama3_tools.jinja").read_text()], [], ["chat", "tools"]),
        ({"general.architecture": "llama"}, [(TEMPLATES / "mistral_tools.jinja").read_text()], [], ["chat", "tools"]),
        ({"general.architecture": "qwen3"}, [THINK], [], ["chat", "reasoning"]),
        ({"general.architecture": "qwen2"}, [STRIPS_THINKING], [], ["chat", "reasoning"]),
        ({"general.architecture": "llama"}, [MENTIONS_TOOLS_IN_TEXT], [], ["chat"]),
        ({"general.architecture": "gemma3"}, [CHATML], [artifact.MMPROJ, artifact.GGUF], ["chat", "vision"]),
    ],
)
def test_rules(metadata: dict[str, str], templates: list[str], layers: list[str], expected: list[str]) -> None:
    assert derive(metadata, templates, layers) == expected


def test_named_template_variants_count() -> None:
    """Some GGUFs keep a second template for tool use (`tokenizer.chat_template.tool_use`)."""
    hermes = (TEMPLATES / "hermes_tools.jinja").read_text()
    metadata = {"general.architecture": "llama", "tokenizer.chat_template": CHATML}
    assert derive(metadata, gguf_templates(metadata), []) == ["chat"]
    metadata["tokenizer.chat_template.tool_use"] = hermes
    assert derive(metadata, gguf_templates(metadata), []) == ["chat", "tools"]


def test_smollm2_is_a_chat_model(smollm2_gguf: Path) -> None:
    metadata = GGUFHeader(smollm2_gguf).values
    assert derive(metadata, gguf_templates(metadata), [artifact.GGUF]) == ["chat"]


def test_a_template_layer_replaces_the_gguf_template(tmp_path: Path) -> None:
    gguf = write_gguf(tmp_path / "model.gguf", chat_template=CHATML)
    template = tmp_path / "tools.jinja"
    template.write_text((TEMPLATES / "hermes_tools.jinja").read_text())
    store = Store(tmp_path / "store")
    plain = store.write_artifact(package(gguf), ["ai/plain"])
    with_layer = store.write_artifact(package(gguf, chat_template=template), ["ai/tools"])
    assert stored_capabilities(plain, store.blobs.path) == ["chat"]
    assert stored_capabilities(with_layer, store.blobs.path) == ["chat", "tools"]


def test_the_gguf_header_stands_in_for_a_config_without_metadata(tmp_path: Path) -> None:
    """A config with no `gguf` block (a tool that writes none): the header says it pools, so it embeds."""
    gguf = write_gguf(tmp_path / "pooled.gguf", pooling_type=1)
    layer = layer_from_file(gguf, artifact.GGUF)
    built = artifact.build_artifact({"format": "gguf"}, [layer], datetime.now(timezone.utc))
    store = Store(tmp_path / "store")
    model = store.write_artifact(built, ["ai/pooled"])
    assert "gguf" not in model.config
    reads: list[str] = []

    def blob_path(digest: str) -> Path:
        reads.append(digest)
        return store.blobs.path(digest)

    assert stored_capabilities(model, blob_path) == ["embeddings"]
    assert reads == [layer.digest]
    assert stored_capabilities(model, blob_path) == ["embeddings"]
    assert reads == [layer.digest], "worked out once per model ID"
