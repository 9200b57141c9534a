"""Packaging: GGUF metadata in the config, and the artifact's exact format."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from docker_model.distribution import UnsupportedFormatError, package
from docker_model.distribution.artifact import parse_manifest, sha256_digest
from docker_model.distribution.gguf_metadata import find_shards, format_bytes, format_number
from tests.fixtures.gguf_files import TINY_CONTEXT, write_gguf

CREATED = datetime(2025, 5, 1, 12, 30, tzinfo=timezone.utc)


def test_gguf_model_config_and_manifest(tmp_path: Path, tiny_gguf: Path) -> None:
    license_file = tmp_path / "LICENSE"
    license_file.write_text("Apache-2.0\n")
    template = tmp_path / "chat.jinja"
    template.write_text("{{ messages }}")
    projector = write_gguf(tmp_path / "proj.mmproj", seed=9, architecture="clip")

    art = package(tiny_gguf, licenses=[license_file], chat_template=template, mmproj=projector, created=CREATED)

    manifest = json.loads(art.manifest_bytes)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"] == {
        "mediaType": "application/vnd.docker.ai.model.config.v0.1+json",
        "size": len(art.config_bytes),
        "digest": sha256_digest(art.config_bytes),
    }
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.docker.ai.gguf.v3",
        "application/vnd.docker.ai.license",
        "application/vnd.docker.ai.mmproj",
        "application/vnd.docker.ai.chat.template.jinja",
    ]
    gguf_layer = manifest["layers"][0]
    assert gguf_layer["digest"] == sha256_digest(tiny_gguf.read_bytes())  # uncompressed: digest = diff ID
    assert gguf_layer["size"] == tiny_gguf.stat().st_size
    annotations = gguf_layer["annotations"]
    assert annotations["org.cncf.model.filepath"] == "tiny-model.gguf"
    assert annotations["org.cncf.model.file.mediatype.untested"] == "false"
    metadata = json.loads(annotations["org.cncf.model.file.metadata+json"])
    assert metadata["name"] == "tiny-model.gguf"
    assert metadata["size"] == tiny_gguf.stat().st_size
    assert (metadata["uid"], metadata["gid"], metadata["typeflag"]) == (0, 0, 0)
    assert metadata["mode"] == tiny_gguf.stat().st_mode & 0o777

    document = json.loads(art.config_bytes)
    assert document["descriptor"] == {"created": "2025-05-01T12:30:00.000000Z"}
    assert document["rootfs"] == {"type": "rootfs", "diff_ids": [la["digest"] for la in manifest["layers"]]}
    config = document["config"]
    assert config["format"] == "gguf"
    assert config["quantization"] == "Q4_K_M"
    assert config["architecture"] == "llama"
    assert config["parameters"] == "512"  # one 16x32 tensor
    assert "context_size" not in config  # only recorded when asked for
    gguf = config["gguf"]
    assert gguf["general.name"] == "tiny-0"
    assert gguf["llama.context_length"] == str(TINY_CONTEXT)
    assert gguf["llama.rope.freq_base"] == "10000.000000"
    assert gguf["tokenizer.ggml.add_bos_token"] == "true"
    assert gguf["general.languages"] == "en, fr"
    assert "tokenizer.ggml.tokens" not in gguf  # arrays longer than 50 are left out
    assert art.id == sha256_digest(art.manifest_bytes)
    assert parse_manifest(art.manifest_bytes) == manifest


def test_explicit_context_size_wins(tiny_gguf: Path) -> None:
    config = json.loads(package(tiny_gguf, context_size=512).config_bytes)["config"]
    assert config["context_size"] == 512


def test_real_model_metadata(smollm2_gguf: Path) -> None:
    config = json.loads(package(smollm2_gguf, created=CREATED).config_bytes)["config"]
    assert config["quantization"] == "Q4_1"
    assert config["architecture"] == "llama"
    assert config["parameters"] == "134.52M"
    assert config["size"].endswith("MiB")
    assert config["gguf"]["llama.context_length"] == "8192"
    assert config["gguf"]["general.basename"] == "smollm2"


def test_shards_found_from_the_first(sharded_gguf: list[Path]) -> None:
    assert find_shards(sharded_gguf[0]) == sharded_gguf
    art = package(sharded_gguf[0])
    layers = json.loads(art.manifest_bytes)["layers"]
    assert [la["annotations"]["org.cncf.model.filepath"] for la in layers] == [p.name for p in sharded_gguf]
    assert json.loads(art.config_bytes)["config"]["parameters"] == "1.54K"  # 3 x 512 over all shards


def test_sharded_errors_name_the_problem(sharded_gguf: list[Path]) -> None:
    with pytest.raises(ValueError, match="not the first shard"):
        find_shards(sharded_gguf[1])
    sharded_gguf[2].unlink()
    with pytest.raises(ValueError, match=sharded_gguf[2].name):
        package(sharded_gguf[0])


def test_not_a_gguf_file(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 not gguf")
    with pytest.raises(UnsupportedFormatError, match="not a GGUF file"):
        package(bogus)
    with pytest.raises(FileNotFoundError):
        package(tmp_path / "missing.gguf")


def test_other_config_media_types_are_unsupported(tiny_gguf: Path) -> None:
    manifest = json.loads(package(tiny_gguf).manifest_bytes)
    manifest["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json"
    with pytest.raises(UnsupportedFormatError, match="unsupported model format"):
        parse_manifest(json.dumps(manifest).encode())


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0"), (999, "999"), (1_500, "1.50K"), (134_515_008, "134.52M"), (4_000_000_000, "4B")],
)
def test_parameter_counts(count: int, text: str) -> None:
    assert format_number(count) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0B"), (512, "512B"), (2048, "2KiB"), (1_000_500, "1MB"), (103_138_304, "98.36MiB"), (2**31, "2GiB")],
)
def test_sizes(count: int, text: str) -> None:
    assert format_bytes(count) == text


def test_gguf_writer_fixture_is_deterministic(tmp_path: Path) -> None:
    a = write_gguf(tmp_path / "a.gguf", seed=3)
    b = write_gguf(tmp_path / "b.gguf", seed=3)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{{ messages }", "is not valid Jinja"),
        ("{% for m in messages %}{{ m.content }}{% endfor %} caf\xe9".encode("latin-1"), "is not UTF-8 text"),
    ],
)
def test_a_chat_template_must_be_utf8_jinja(tmp_path: Path, tiny_gguf: Path, content: bytes, problem: str) -> None:
    template = tmp_path / "chat.jinja"
    template.write_bytes(content)
    with pytest.raises(UnsupportedFormatError, match=problem):
        package(tiny_gguf, chat_template=template)


def test_a_projector_must_be_a_gguf_projector(tmp_path: Path, tiny_gguf: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a projector")
    with pytest.raises(UnsupportedFormatError, match="is not a GGUF file"):
        package(tiny_gguf, mmproj=text)
    with pytest.raises(UnsupportedFormatError, match="is not a multimodal projector"):
        package(tiny_gguf, mmproj=tiny_gguf)
