"""The manifest builder of `generate kube`: pure functions, checked without kubectl or a runner."""

from __future__ import annotations

import json
from typing import Any

import pytest

from docker_model.cli.kube_files import manifests
from docker_model.cli.kube_manifests import (
    KubeOptionError,
    KubeOptions,
    deployment,
    parse_gpu,
    parse_replicas,
    parse_rpc_workers,
)
from docker_model.cli.kube_rpc import rpc_network_policy, rpc_service, rpc_statefulset
from docker_model.rpc_protocol import parse_endpoints


def test_files_are_json_under_a_comment() -> None:
    files = manifests(KubeOptions("ai/smollm2:360M-Q4_K_M", replicas=2))
    assert sorted(files) == ["README.md", "deployment.yaml", "kustomization.yaml", "service.yaml"]
    for name in ("deployment.yaml", "service.yaml", "kustomization.yaml"):
        comment, _, body = files[name].partition("\n{")
        assert all(line.startswith("#") for line in comment.splitlines())
        json.loads("{" + body)
    assert json.loads(files["kustomization.yaml"].split("\n", 3)[3])["resources"] == [
        "deployment.yaml",
        "service.yaml",
    ]


def test_names_are_dns_labels_from_the_repository() -> None:
    assert KubeOptions("registry.example.com:5000/Team/My_Model.v2:tag".lower()).name == "docker-model-my-model-v2-tag"
    assert len(KubeOptions("ai/" + "x" * 200).name) <= 63
    assert KubeOptions("ai/smollm2:135M").name != KubeOptions("ai/smollm2:360M").name  # two Deployments


def test_the_init_container_pulls_and_the_runner_serves_the_same_volumes() -> None:
    pod = deployment(KubeOptions("ai/smollm2", registry_secret="regcred"))["spec"]["template"]["spec"]
    [init], [runner] = pod["initContainers"], pod["containers"]
    assert "pull" in init["args"][0] and "stop-runner" in init["args"][0]
    assert {"name": "DOCKER_CONFIG", "value": "/etc/docker-model/registry"} in init["env"]
    assert all(variable["name"] != "DOCKER_CONFIG" for variable in runner["env"])
    shared = {mount["name"] for mount in init["volumeMounts"]} & {mount["name"] for mount in runner["volumeMounts"]}
    assert {"models", "state", "token"} <= shared
    assert runner["args"][:2] == ["--host", "0.0.0.0"]


def test_no_gpu_no_gpu_request_and_no_pull_secret_without_one() -> None:
    pod = deployment(KubeOptions("ai/smollm2"))["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "imagePullSecrets" not in pod
    assert KubeOptions("ai/smollm2", gpu="cuda").runner_image.endswith("-cuda")


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "two", ""])
def test_bad_replicas(value: str) -> None:
    with pytest.raises(KubeOptionError, match="--replicas"):
        parse_replicas(value)


def test_replicas_and_gpu_choices() -> None:
    assert parse_replicas("3") == 3
    assert parse_gpu("cuda") == "cuda"
    with pytest.raises(KubeOptionError, match="--gpu must be none or cuda, not 'metal'"):
        parse_gpu("metal")


def runner_pod(options: KubeOptions) -> dict[str, Any]:
    return deployment(options)["spec"]["template"]


def rpc_pod(options: KubeOptions) -> dict[str, Any]:
    return rpc_statefulset(options)["spec"]["template"]


def selects(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    return selector.items() <= pod["metadata"]["labels"].items()


def test_rpc_workers_add_their_manifests_to_the_kustomization() -> None:
    files = manifests(KubeOptions("ai/smollm2", rpc_workers=2))
    resources = json.loads(files["kustomization.yaml"].split("\n", 3)[3])["resources"]
    assert resources == [
        "deployment.yaml",
        "service.yaml",
        "rpc-statefulset.yaml",
        "rpc-service.yaml",
        "rpc-networkpolicy.yaml",
    ]
    assert "rpc-statefulset.yaml" not in manifests(KubeOptions("ai/smollm2"))


def test_rpc_workers_and_replicas_are_refused_together() -> None:
    with pytest.raises(KubeOptionError, match="--rpc-workers cannot be used with --replicas 2: an rpc-server serves"):
        KubeOptions("ai/smollm2", replicas=2, rpc_workers=2)


@pytest.mark.parametrize("value", ["0", "15", "-1", "two", ""])
def test_bad_rpc_workers(value: str) -> None:
    with pytest.raises(KubeOptionError, match="--rpc-workers must be a whole number of rpc-server pods from 1 to 14"):
        parse_rpc_workers(value)


def test_the_head_pools_each_rpc_pod_by_its_stable_name() -> None:
    options = KubeOptions("ai/smollm2", rpc_workers=3)
    [runner] = runner_pod(options)["spec"]["containers"]
    [pool] = [variable["value"] for variable in runner["env"] if variable["name"] == "DOCKER_MODEL_RPC"]
    statefulset, service = rpc_statefulset(options), rpc_service(options)
    assert statefulset["spec"]["replicas"] == 3
    assert service["spec"]["clusterIP"] == "None" and statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    name = statefulset["metadata"]["name"]
    assert [endpoint.address for endpoint in parse_endpoints(pool)] == [
        f"{name}-{ordinal}.{name}:50052" for ordinal in range(3)
    ]
    [rpc] = rpc_pod(options)["spec"]["containers"]
    assert rpc["ports"] == [{"name": "rpc", "containerPort": 50052, "protocol": "TCP"}]
    assert service["spec"]["ports"][0]["targetPort"] == "rpc"
    no_pool = runner_pod(KubeOptions("ai/smollm2"))["spec"]["containers"][0]["env"]
    assert all(variable["name"] != "DOCKER_MODEL_RPC" for variable in no_pool)


def test_the_network_policy_admits_the_rpc_port_only_from_the_head() -> None:
    options = KubeOptions("ai/smollm2", rpc_workers=2)
    policy = rpc_network_policy(options)["spec"]
    head, workers = runner_pod(options), rpc_pod(options)
    assert selects(policy["podSelector"]["matchLabels"], workers)
    assert not selects(policy["podSelector"]["matchLabels"], head)
    assert policy["policyTypes"] == ["Ingress"]  # so ingress not listed below is denied
    [rule] = policy["ingress"]
    [source] = rule["from"]
    assert list(source) == ["podSelector"]  # the head's pods in this namespace, no other namespace or address
    assert selects(source["podSelector"]["matchLabels"], head)
    assert not selects(source["podSelector"]["matchLabels"], workers)
    assert rule["ports"] == [{"protocol": "TCP", "port": 50052}]


def test_rpc_pods_have_the_runners_posture_and_no_probe_that_connects() -> None:
    options = KubeOptions("ai/smollm2", rpc_workers=2, registry_secret="regcred")
    head, workers = runner_pod(options)["spec"], rpc_pod(options)["spec"]
    for key in ("securityContext", "automountServiceAccountToken", "imagePullSecrets"):
        assert workers[key] == head[key]
    [rpc] = workers["containers"]
    assert rpc["securityContext"] == head["containers"][0]["securityContext"]
    assert rpc["command"][-1] == "rpc-server"
    assert rpc["args"][:3] == ["--host", "$(POD_IP)", "--allow-remote"]
    assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in rpc["env"]
    assert "livenessProbe" not in rpc
    assert list(rpc["readinessProbe"]) == ["exec", "periodSeconds"]  # never tcpSocket: it would take the one client
    assert {mount["mountPath"] for mount in rpc["volumeMounts"]} == {"/var/lib/docker-model/state", "/tmp"}


def test_gpu_cuda_requests_a_gpu_for_each_rpc_pod() -> None:
    [rpc] = rpc_pod(KubeOptions("ai/smollm2", gpu="cuda", rpc_workers=2))["spec"]["containers"]
    assert rpc["resources"]["limits"]["nvidia.com/gpu"] == 1 and rpc["image"].endswith("-cuda")
    assert "--mem" not in rpc["args"]  # the GPU offers its own memory, not the container's
    [cpu] = rpc_pod(KubeOptions("ai/smollm2", rpc_workers=2))["spec"]["containers"]
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
    assert cpu["args"][-2:] == ["--mem", "$(RPC_OFFER)"]
    assert {
        "name": "RPC_OFFER",
        "valueFrom": {"resourceFieldRef": {"containerName": "rpc-server", "resource": "limits.memory"}},
    } in cpu["env"]


def test_rpc_names_fit_the_statefulset_limits() -> None:
    options = KubeOptions("ai/" + "x" * 200, rpc_workers=14)
    assert len(options.rpc_name) <= 52  # its pods' controller-revision-hash label adds 11 characters to 63
    assert all(len(endpoint.host.split(".")[0]) <= 63 for endpoint in parse_endpoints(options.rpc_endpoints))
