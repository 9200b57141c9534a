"""`docker model generate kube`: the manifests render with kubectl, validate against Kubernetes 1.33 to 1.37,
and their containers' command lines serve the real model when run here as local processes.

There is no cluster (and no container engine) here. The local run reads each container's `command`, `args`
and `env` from the rendered YAML and changes only these, nothing else:
1. the image root (`/opt/docker-model`, where the Dockerfile installs the plugin) -> this checkout's venv;
2. the model's registry host (`models.example.internal`) -> the local registry fixture (with credentials);
3. each volume's mount path -> a temporary folder (mounts of one volume share it; each pod has its own);
4. Secrets -> test values in those folders: the token Secret's file (mounted at the state directory's
   `token`) holds a test token, the registry Secret's `config.json` the registry fixture's credentials;
5. a variable from the container's `limits.memory` -> that limit in bytes, as the kubelet gives it;
6. with `--rpc-workers`: an rpc pod's IP (`status.podIP`) -> 127.0.0.1, and the RPC port (50052) -> a free
   port of its own, since here the pods share one address;
7. with `--rpc-workers`: each rpc pod's stable name in the runner's pool (`POD.SERVICE:50052`) ->
   127.0.0.1 and that pod's port.
The kubelet's expansion of `$(NAME)` in `command` and `args` from the container's variables is done as it
does it. The runner's port is not substituted: the manifests are generated with `--port` set to a free port.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
import yaml

from docker_model.rpc_protocol import DEFAULT_RPC_PORT, Endpoint, RpcBusy, bundled_protocol, probe
from docker_model.units import parse_bytes
from tests.fixtures.registry import RegistryServer, free_port, write_docker_config
from tests.fixtures.runner import RunnerEnv, serving_process

pytestmark = pytest.mark.integration

KUBECTL = "/usr/bin/kubectl"
KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35", "1.36", "1.37")
IMAGE_ROOT = "/opt/docker-model"
REGISTRY_PLACEHOLDER = "models.example.internal"
TEST_TOKEN = "test-token-for-the-kube-pods"


def plugin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The plugin run directly, as the init container runs it."""
    return subprocess.run(
        [sys.executable, "-m", "docker_model.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def generate(output: Path, *options: str, model: str = "ai/smollm2") -> list[dict[str, Any]]:
    """Generate into `output`, render with `kubectl kustomize` and return the rendered documents."""
    result = plugin("generate", "kube", model, "-o", str(output), *options)
    assert result.returncode == 0, result.stderr
    rendered = subprocess.run([KUBECTL, "kustomize", str(output)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    (output.parent / f"{output.name}.rendered.yaml").write_text(rendered.stdout)
    return list(yaml.safe_load_all(rendered.stdout))


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [document for document in documents if document["kind"] == kind]
    return found


def rpc_service(documents: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [
        document
        for document in documents
        if document["kind"] == "Service" and document["spec"].get("clusterIP") == "None"
    ]
    return found


RUNNER_KINDS = ["Deployment", "Service"]
RPC_KINDS = ["Deployment", "NetworkPolicy", "Service", "Service", "StatefulSet"]


@pytest.mark.parametrize(
    ("options", "kinds"),
    [
        (["--replicas", "3"], RUNNER_KINDS),
        (
            ["--gpu", "cuda", "--registry-secret", "regcred", "--image", "registry.example.com/team/runner:1"],
            RUNNER_KINDS,
        ),
        (["--rpc-workers", "2"], RPC_KINDS),
        (["--rpc-workers", "3", "--gpu", "cuda", "--registry-secret", "regcred"], RPC_KINDS),
    ],
)
def test_manifests_render_and_validate_strictly(tmp_path: Path, options: list[str], kinds: list[str]) -> None:
    from kubernetes_validate.utils import all_versions

    documents = generate(tmp_path / "out", *options)
    assert sorted(document["kind"] for document in documents) == kinds
    supported = set(all_versions())
    missing = [version for version in KUBERNETES_VERSIONS if not any(v.startswith(version) for v in supported)]
    assert not missing, f"kubernetes-validate lacks the schemas of Kubernetes {missing}: upgrade it"
    rendered = tmp_path / "out.rendered.yaml"
    for version in KUBERNETES_VERSIONS:
        result = subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, str(rendered)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"Kubernetes {version}: {result.stdout}{result.stderr}"
        assert result.stdout.count("passed for resource") == len(kinds), result.stdout


def test_replicas_gpu_and_secrets_are_in_the_manifests(tmp_path: Path) -> None:
    documents = generate(tmp_path / "out", "--replicas", "4", "--gpu", "cuda", "--registry-secret", "regcred")
    deployment, service = by_kind(documents, "Deployment"), by_kind(documents, "Service")
    assert deployment["spec"]["replicas"] == 4
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["ports"][0]["port"] == 12434
    pod = deployment["spec"]["template"]["spec"]
    [runner] = pod["containers"]
    assert runner["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert runner["readinessProbe"]["httpGet"]["path"] == "/"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    secrets = {volume["name"]: volume["secret"]["secretName"] for volume in pod["volumes"] if "secret" in volume}
    assert secrets == {"token": "docker-model-token", "registry-config": "regcred"}
    assert "-cuda" in runner["image"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in [*pod["initContainers"], runner]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert TEST_TOKEN not in (tmp_path / "out.rendered.yaml").read_text()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--rpc-workers", "2", "--replicas", "3"],
            "--rpc-workers cannot be used with --replicas 3: an rpc-server serves one client",
        ),
        (["--rpc-workers", "0"], "--rpc-workers must be a whole number of rpc-server pods from 1 to 14"),
        (["--replicas", "0"], "--replicas must be a whole number"),
        (["--replicas", "two"], "--replicas must be a whole number"),
        (["--gpu", "rocm"], "--gpu must be none or cuda"),
        (["--token-secret", "Bad_Name"], "--token-secret 'Bad_Name' is not a Kubernetes object name"),
    ],
)
def test_refusals_are_one_line(tmp_path: Path, options: list[str], message: str) -> None:
    result = plugin("generate", "kube", "ai/smollm2", "-o", str(tmp_path / "out"), *options)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_empty_needs_force(tmp_path: Path) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "mine.txt").write_text("keep me")
    refused = plugin("generate", "kube", "ai/smollm2", "-o", str(output))
    assert refused.returncode != 0
    assert (
        refused.stderr.strip()
        == f"Error: {output} is not empty: choose an empty folder, or add --force to write into it"
    )
    assert sorted(path.name for path in output.iterdir()) == ["mine.txt"]
    forced = plugin("generate", "kube", "ai/smollm2", "-o", str(output), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (output / "kustomization.yaml").is_file() and (output / "mine.txt").read_text() == "keep me"


class Substitutions:
    """The documented substitution list of this module's docstring, applied in one pass."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        keys = sorted(table, key=len, reverse=True)
        self.pattern = re.compile("|".join(f"(?<![\\w.-]){re.escape(key)}(?![\\w.-])" for key in keys))

    def __call__(self, text: str) -> str:
        return self.pattern.sub(lambda match: self.table[match.group(0)], text)


def local_process(
    container: dict[str, Any], substitute: Substitutions, fields: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The container's command line and variables, substituted; `fields` gives each `fieldRef`'s value."""
    env = {"PATH": os.environ["PATH"]}
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = substitute(variable["value"])
        elif "fieldRef" in variable["valueFrom"]:
            env[variable["name"]] = (fields or {})[variable["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            field = variable["valueFrom"]["resourceFieldRef"]  # nothing else is expected
            assert field == {"containerName": container["name"], "resource": "limits.memory"}, variable
            env[variable["name"]] = str(parse_bytes(container["resources"]["limits"]["memory"]))
    argv = [expand(substitute(part), env) for part in [*container.get("command", []), *container.get("args", [])]]
    return argv, env


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's expansion: `$(NAME)` -> the variable's value (kept as written if undefined), `$$` -> `$`."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda match: env.get(match[1], match[0]) if match[1] else "$", text
    )


def start_rpc_pods(documents: list[dict[str, Any]], tmp_path: Path, pods: contextlib.ExitStack) -> dict[str, str]:
    """Each pod of the rpc StatefulSet as a local process, waited for with its own readiness probe; returns the
    stable names of the runner's pool -> the pods' local addresses (substitutions 6 and 7)."""
    statefulset, service = by_kind(documents, "StatefulSet"), rpc_service(documents)
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert "livenessProbe" not in container and "tcpSocket" not in container["readinessProbe"]
    readiness = container["readinessProbe"]["exec"]["command"]
    pool = {}
    for ordinal in range(statefulset["spec"]["replicas"]):
        pod, port = f"{statefulset['metadata']['name']}-{ordinal}", free_port()
        table = {IMAGE_ROOT: sys.prefix, str(DEFAULT_RPC_PORT): str(port)}
        for mount in container["volumeMounts"]:
            table[mount["mountPath"]] = str(tmp_path / pod / mount["name"])
            (tmp_path / pod / mount["name"]).mkdir(parents=True, mode=0o700)
        argv, env = local_process(container, Substitutions(table), {"status.podIP": "127.0.0.1"})

        def ready(env: dict[str, str] = env) -> bool:
            return subprocess.run(readiness, env=env, timeout=10).returncode == 0

        assert not ready(), "the readiness probe passed with nothing listening on the pod's port"
        pods.enter_context(serving_process(argv, env, tmp_path / f"{pod}.log", ready, seconds=120, cwd=tmp_path))
        endpoint = Endpoint("127.0.0.1", port)
        answer = probe(endpoint)  # the readiness probe never took the server's one client place
        assert answer.version == bundled_protocol() and answer.devices
        pool[f"{pod}.{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"] = endpoint.address
    return pool


@pytest.mark.parametrize("rpc_workers", [0, 2], ids=["runner", "rpc-workers"])
def test_the_containers_serve_the_model_as_local_processes(
    tmp_path: Path, auth_registry: RegistryServer, smollm2_gguf: Path, rpc_workers: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="kube-tmp-", dir="/tmp") as short_tmp, contextlib.ExitStack() as pods:
        serve_as_local_processes(tmp_path, auth_registry, smollm2_gguf, short_tmp, rpc_workers, pods)


def serve_as_local_processes(
    tmp_path: Path,
    auth_registry: RegistryServer,
    smollm2_gguf: Path,
    short_tmp: str,
    rpc_workers: int,
    pods: contextlib.ExitStack,
) -> None:
    assert auth_registry.username and auth_registry.password
    credentials = write_docker_config(
        tmp_path / "pusher", auth_registry.host, auth_registry.username, auth_registry.password
    )
    pushed = plugin(
        "package", "--gguf", str(smollm2_gguf), "--push", f"{auth_registry.host}/ai/smollm2",
        env={"DOCKER_CONFIG": str(credentials)},
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr

    port = free_port()
    model = f"{REGISTRY_PLACEHOLDER}/ai/smollm2"
    options = ["--port", str(port), "--registry-secret", "regcred"]
    documents = generate(
        tmp_path / "out", *options, *(["--rpc-workers", str(rpc_workers)] if rpc_workers else []), model=model
    )
    pod = by_kind(documents, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: tmp_path / "volumes" / volume["name"] for volume in pod["volumes"]}
    # The workers' UNIX sockets go in TMPDIR: a short folder, as a pod's /tmp is (a socket path has 107 bytes).
    volumes["tmp"] = Path(short_tmp)
    table = {IMAGE_ROOT: sys.prefix, REGISTRY_PLACEHOLDER: auth_registry.host}
    for container in [*pod["initContainers"], *pod["containers"]]:
        for mount in container["volumeMounts"]:
            local = volumes[mount["name"]] / mount.get("subPath", "")
            table[mount["mountPath"]] = str(local)
    for path in volumes.values():
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
    (volumes["token"] / "token").write_text(TEST_TOKEN + "\n")  # the token Secret's value
    write_docker_config(volumes["registry-config"], auth_registry.host, auth_registry.username, auth_registry.password)
    # The state volume holds the token file where the subPath mount puts it.
    assert table["/var/lib/docker-model/state/token"] == str(volumes["token"] / "token")
    (volumes["state"] / "token").write_text(TEST_TOKEN + "\n")
    [runner] = pod["containers"]
    if rpc_workers:
        pool = start_rpc_pods(documents, tmp_path, pods)
        [setting] = [variable["value"] for variable in runner["env"] if variable["name"] == "DOCKER_MODEL_RPC"]
        assert setting.split(",") == list(pool)  # the runner-wide pool names each rpc pod, in order
        table |= pool
    substitute = Substitutions(table)

    cleanup = RunnerEnv(port, volumes["models"], volumes["state"])  # stops a runner the init step left, if any
    try:
        [init] = pod["initContainers"]
        argv, env = local_process(init, substitute)
        pulled = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        assert not cleanup.is_up(), "the init step left its runner running"

        argv, env = local_process(runner, substitute)
        with serving_process(argv, env, tmp_path / "runner.log", cleanup.is_up, seconds=120, cwd=tmp_path):
            health_probe = runner["readinessProbe"]["httpGet"]
            assert health_probe["port"] == runner["ports"][0]["name"]
            url = f"http://127.0.0.1:{port}"
            health = requests.get(url + health_probe["path"], timeout=10)
            assert health.status_code == 200 and health.text.startswith("Docker Model Runner is running")
            assert requests.get(f"{url}/engines/v1/models", timeout=10).status_code == 401  # the token is needed

            client = openai.OpenAI(base_url=f"{url}/engines/v1", api_key=TEST_TOKEN, timeout=300)
            served = f"{auth_registry.host}/ai/smollm2"
            reply = client.chat.completions.create(
                model=served, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
            )
            assert reply.choices[0].message.content
            assert reply.usage is not None and reply.usage.completion_tokens > 0
            if rpc_workers:  # the model's worker holds each rpc-server of the pool: a second client waits unanswered
                for address in env["DOCKER_MODEL_RPC"].split(","):
                    host, _, local_port = address.rpartition(":")
                    with pytest.raises(RpcBusy):
                        probe(Endpoint(host, int(local_port)), timeout=2)
    finally:
        cleanup.stop()
