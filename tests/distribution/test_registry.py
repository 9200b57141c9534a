"""Push and pull against the real docker-registry: round trips, format, auth, errors, retries."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from docker_model.distribution import (
    AuthenticationError,
    DigestMismatchError,
    ModelNotFoundError,
    ProgressEvent,
    RegistryClient,
    RegistryUnreachableError,
    Store,
    UnsupportedFormatError,
    package,
)
from docker_model.distribution.artifact import sha256_digest
from tests.distribution.http_proxy import CountingProxy
from tests.distribution.token_server import TokenServer
from tests.fixtures.gguf_files import write_gguf
from tests.fixtures.registry import RegistryServer, free_port, write_docker_config

pytestmark = pytest.mark.integration


def client(tmp_path: Path, name: str, docker_config: Path | None = None) -> RegistryClient:
    return RegistryClient(
        Store(tmp_path / name), docker_config=docker_config or tmp_path / "no-docker-config", backoff=0.01
    )


def skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_smollm2_round_trip_byte_for_byte(tmp_path: Path, registry: RegistryServer, smollm2_gguf: Path) -> None:
    license_file = tmp_path / "LICENSE"
    license_file.write_text("Apache-2.0")
    art = package(smollm2_gguf, licenses=[license_file])
    ref = f"{registry.host}/ai/smollm2:Q4_1"
    pushed: list[ProgressEvent] = []
    client(tmp_path, "source").push_artifact(art, ref, progress=pushed.append)
    assert pushed and pushed[-1].total == sum(la.size for la in art.layers) + len(art.config_bytes)

    puller = client(tmp_path, "fresh")
    events: list[ProgressEvent] = []
    model = puller.pull(ref, progress=events.append)
    assert model.id == art.id
    assert model.tags == [ref]
    assert puller.store.manifests.read(model.id) == art.manifest_bytes
    assert puller.store.blobs.path(art.config_digest).read_bytes() == art.config_bytes
    gguf_blob = puller.store.blobs.path(art.layers[0].digest)
    assert gguf_blob.read_bytes() == smollm2_gguf.read_bytes()
    assert puller.store.bundle(model).gguf_path.read_bytes() == smollm2_gguf.read_bytes()
    assert {e.layer_digest for e in events} == {la.digest for la in art.layers}
    assert all(e.total == model.size for e in events)
    final = {e.layer_digest: e.current for e in events}
    assert final == {la.digest: la.size for la in art.layers}

    # An independent client reads back the exact artifact format.
    manifest = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.ai.model.config.v0.1+json"
    assert [la["mediaType"] for la in manifest["layers"]] == [
        "application/vnd.docker.ai.gguf.v3",
        "application/vnd.docker.ai.license",
    ]
    assert manifest["layers"][0]["annotations"]["org.cncf.model.filepath"] == smollm2_gguf.name
    config = json.loads(skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert config["config"]["format"] == "gguf"
    assert config["config"]["quantization"] == "Q4_1"
    assert config["config"]["architecture"] == "llama"
    assert config["config"]["parameters"] == "134.52M"
    assert config["config"]["gguf"]["general.architecture"] == "llama"
    assert config["rootfs"]["diff_ids"] == [la["digest"] for la in manifest["layers"]]
    assert "created" in config["descriptor"]


def test_push_from_store_skips_blobs_the_registry_has(tmp_path: Path, registry: RegistryServer) -> None:
    pusher = client(tmp_path, "store")
    art = package(write_gguf(tmp_path / "m.gguf"))
    ref = f"{registry.host}/team/tiny:v1"
    pusher.store.write_artifact(art, [ref])
    first: list[ProgressEvent] = []
    pusher.push(ref, progress=first.append)
    assert "Pushed" in {e.message for e in first}
    again: list[ProgressEvent] = []
    pusher.push(ref, progress=again.append)
    assert {e.message for e in again} == {"Already exists"}
    assert sha256_digest(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").encode()) == art.id


def test_pulling_a_present_model_downloads_nothing(
    tmp_path: Path, registry: RegistryServer, proxy: CountingProxy
) -> None:
    art = package(write_gguf(tmp_path / "m.gguf"))
    client(tmp_path, "src").push_artifact(art, f"{registry.host}/ai/tiny")
    puller = client(tmp_path, "dst")
    puller.pull(f"{proxy.host}/ai/tiny")
    fetched = proxy.total_blob_bytes()
    assert fetched == art.layers[0].size + len(art.config_bytes)
    model = puller.pull(f"{proxy.host}/ai/tiny:latest")
    assert proxy.total_blob_bytes() == fetched
    assert model.id == art.id
    assert puller.pull(f"{proxy.host}/ai/tiny@{art.id}").id == art.id  # by digest: not even a manifest
    assert proxy.total_blob_bytes() == fetched


def test_sharded_model_round_trip(tmp_path: Path, registry: RegistryServer, sharded_gguf: list[Path]) -> None:
    art = package(sharded_gguf[0])
    ref = f"{registry.host}/ai/sharded:v1"
    client(tmp_path, "src").push_artifact(art, ref)
    model = client(tmp_path, "dst").pull(ref)
    assert [la.filepath for la in model.layers] == [p.name for p in sharded_gguf]
    store = Store(tmp_path / "dst")
    for shard, layer in zip(sharded_gguf, model.layers, strict=True):
        assert store.blobs.path(layer.digest).read_bytes() == shard.read_bytes()


def test_unknown_model_and_unsupported_format(tmp_path: Path, registry: RegistryServer) -> None:
    puller = client(tmp_path, "dst")
    with pytest.raises(ModelNotFoundError, match="not found in registry"):
        puller.pull(f"{registry.host}/ai/nothing:here")

    # A container image's manifest: a config of another media type.
    config = b'{"architecture":"amd64","os":"linux"}'
    digest = sha256_digest(config)
    upload = requests.post(f"{registry.url}/v2/other/image/blobs/uploads/")
    requests.put(f"{upload.headers['Location']}&digest={digest}", data=config).raise_for_status()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config), "digest": digest},
        "layers": [],
    }
    requests.put(
        f"{registry.url}/v2/other/image/manifests/latest",
        data=json.dumps(manifest),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    ).raise_for_status()
    with pytest.raises(UnsupportedFormatError, match="unsupported model format"):
        puller.pull(f"{registry.host}/other/image")
    assert puller.store.list() == []


def test_unreachable_registry(tmp_path: Path) -> None:
    with pytest.raises(RegistryUnreachableError, match=r"cannot reach registry 127\.0\.0\.1"):
        client(tmp_path, "dst").pull(f"127.0.0.1:{free_port()}/ai/x")


def test_server_errors_are_retried(tmp_path: Path, registry: RegistryServer, proxy: CountingProxy) -> None:
    art = package(write_gguf(tmp_path / "m.gguf"))
    client(tmp_path, "src").push_artifact(art, f"{registry.host}/ai/tiny")
    proxy.fail_next = 3  # three 503s, the fourth attempt works
    model = client(tmp_path, "dst").pull(f"{proxy.host}/ai/tiny")
    assert model.id == art.id
    assert [status for _, _, status in proxy.blob_requests].count(503) == 3


def test_tampered_blob_fails_and_leaves_the_store_as_it_was(tmp_path: Path, registry: RegistryServer) -> None:
    art = package(write_gguf(tmp_path / "m.gguf"))
    ref = f"{registry.host}/ai/tiny"
    client(tmp_path, "src").push_artifact(art, ref)
    data = registry.blob_data(art.layers[0].digest)
    content = bytearray(data.read_bytes())
    content[-1] ^= 0xFF  # same size, one byte changed
    data.write_bytes(bytes(content))

    puller = client(tmp_path, "dst")
    with pytest.raises(DigestMismatchError, match=art.layers[0].digest):
        puller.pull(ref)
    assert puller.store.list() == []
    assert list(puller.store.blobs.digests()) == []
    assert puller.store.blobs.incomplete_files() == []
    assert puller.store.check() == []


# Authentication --------------------------------------------------------------------------------


def test_basic_auth_with_docker_login_credentials(tmp_path: Path, auth_registry: RegistryServer) -> None:
    config = write_docker_config(
        tmp_path / "docker", auth_registry.host, auth_registry.username, auth_registry.password
    )
    art = package(write_gguf(tmp_path / "m.gguf"))
    ref = f"{auth_registry.host}/private/tiny:v1"
    client(tmp_path, "src", config).push_artifact(art, ref)
    assert client(tmp_path, "dst", config).pull(ref).id == art.id


def test_wrong_password_is_a_clear_error(tmp_path: Path, auth_registry: RegistryServer) -> None:
    config = write_docker_config(tmp_path / "docker", auth_registry.host, auth_registry.username, "wrong")
    with pytest.raises(AuthenticationError) as info:
        client(tmp_path, "dst", config).pull(f"{auth_registry.host}/private/tiny:v1")
    message = str(info.value)
    assert "wrong username, password or token" in message
    assert f"docker login {auth_registry.host}" in message


def test_missing_credentials_say_to_log_in(tmp_path: Path, auth_registry: RegistryServer) -> None:
    with pytest.raises(AuthenticationError, match="requires authentication: run docker login"):
        client(tmp_path, "dst").pull(f"{auth_registry.host}/private/tiny:v1")


def test_credentials_from_a_credential_helper(
    tmp_path: Path, auth_registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`credsStore` runs `docker-credential-<name> get` (a real helper script following the protocol)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-testing"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'if [ "$server" = "{auth_registry.host}" ]; then\n'
        f'  echo \'{{"ServerURL":"{auth_registry.host}","Username":"{auth_registry.username}",'
        f'"Secret":"{auth_registry.password}"}}\'\n'
        "else echo 'credentials not found in native keychain'; exit 1; fi\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {}}, "credsStore": "testing"}))
    art = package(write_gguf(tmp_path / "m.gguf"))
    ref = f"{auth_registry.host}/private/helper:v1"
    client(tmp_path, "src", config).push_artifact(art, ref)
    assert client(tmp_path, "dst", config).pull(ref).id == art.id


def test_bearer_tokens_like_docker_hub(tmp_path: Path, token_registry: tuple[RegistryServer, TokenServer]) -> None:
    registry, tokens = token_registry
    config = write_docker_config(tmp_path / "docker", registry.host, registry.username, registry.password)
    art = package(write_gguf(tmp_path / "m.gguf"))
    client(tmp_path, "src", config).push_artifact(art, f"{registry.host}/public/tiny:v1")
    client(tmp_path, "src", config).push_artifact(art, f"{registry.host}/private/tiny:v1")
    assert tokens.requests and all(user == registry.username for user, _ in tokens.requests)

    tokens.requests.clear()
    anonymous = client(tmp_path, "anon")
    assert anonymous.pull(f"{registry.host}/public/tiny:v1").id == art.id  # anonymous token, pull scope
    assert tokens.requests == [(None, "repository:public/tiny:pull")]  # one token serves every blob
    with pytest.raises(AuthenticationError, match="requires authentication"):
        anonymous.pull(f"{registry.host}/private/tiny:v1")

    logged_in = client(tmp_path, "user", config)
    assert logged_in.pull(f"{registry.host}/private/tiny:v1").id == art.id

    wrong = write_docker_config(tmp_path / "wrong", registry.host, registry.username, "nope")
    with pytest.raises(AuthenticationError, match="wrong username, password or token"):
        client(tmp_path, "wrong", wrong).pull(f"{registry.host}/private/tiny:v1")
