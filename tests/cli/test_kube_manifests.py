"""The manifest builder of `generate kube`: pure functions, checked without kubectl or a runner."""

from __future__ import annotations

import json

import pytest

from docker_model.cli.kube_manifests import (
    KubeOptionError,
    KubeOptions,
    deployment,
    manifests,
    parse_gpu,
    parse_replicas,
)


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
