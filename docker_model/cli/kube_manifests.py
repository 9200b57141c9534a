"""Kubernetes manifests for `docker model generate kube`: pure functions from options to file texts.

N runner pods (a Deployment) behind a ClusterIP Service. Each pod pulls its model in an init container
(`docker-model pull`, the plugin run directly, which starts a runner on the pod's loopback for the pull
and stops it) into an emptyDir shared with the runner container. The runner listens on the wildcard
address, so every route but the health check `GET /` needs the runner's token (a wildcard address's token scope is
`all`); the token comes from a Secret mounted as the runner's token file, and registry credentials from a
docker-config Secret, both by name only. Files are JSON, which is YAML, under a `#` comment: no YAML
library is needed at run time.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from docker_model import __version__
from docker_model.reference import parse_reference

IMAGE_ROOT = "/opt/docker-model"  # where the Dockerfile installs the plugin's virtualenv
DATA_ROOT = "/var/lib/docker-model"
MODELS_DIR = f"{DATA_ROOT}/models"
STATE_DIR = f"{DATA_ROOT}/state"
TMP_DIR = "/tmp"
REGISTRY_CONFIG_DIR = "/etc/docker-model/registry"
RUNNER_UID = 10001  # the Dockerfile's `docker-model` user
DEFAULT_PORT = 12434
DEFAULT_TOKEN_SECRET = "docker-model-token"
TOKEN_KEY = "token"  # the key of the token Secret (`kubectl create secret generic NAME --from-literal=token=...`)
GPU_CHOICES = ("none", "cuda")
MAX_NAME_LENGTH = 63  # a Service name is a DNS-1035 label
# Requests and limits when nothing else is known of the model (SmolLM2-sized models to 7B ones at Q4);
# edit them with a kustomize patch for larger models.
DEFAULT_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "8Gi"}}
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


class KubeOptionError(ValueError):
    """An option `generate kube` cannot honour; the message names it and the fix."""


@dataclass(frozen=True)
class KubeOptions:
    model: str
    replicas: int = 1
    image: str | None = None
    gpu: str = "none"
    port: int = DEFAULT_PORT
    token_secret: str = DEFAULT_TOKEN_SECRET
    registry_secret: str | None = None

    @property
    def name(self) -> str:
        """The Deployment's and Service's name: `docker-model-`, the model's repository's last part and its
        tag unless `latest`, so that two tags of one model are two Deployments."""
        reference = parse_reference(self.model)
        repository = reference.repository.rsplit("/", 1)[-1]
        tag = "" if reference.tag in (None, "latest") else f"-{reference.tag}"
        slug = re.sub(r"[^a-z0-9]+", "-", f"{repository}{tag}".lower()).strip("-")
        return f"docker-model-{slug}"[:MAX_NAME_LENGTH].rstrip("-")

    @property
    def runner_image(self) -> str:
        return self.image or f"docker-model-runner:{__version__}{'-cuda' if self.gpu == 'cuda' else ''}"


def parse_replicas(value: str) -> int:
    try:
        replicas = int(value)
    except ValueError:
        replicas = 0
    if replicas < 1:
        raise KubeOptionError(f"--replicas must be a whole number of pods, 1 or more, not {value!r}")
    return replicas


def parse_gpu(value: str) -> str:
    if value not in GPU_CHOICES:
        raise KubeOptionError(f"--gpu must be {' or '.join(GPU_CHOICES)}, not {value!r}")
    return value


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise KubeOptionError(f"--port must be between 1 and 65535, not {port}")
    return port


def check_secret_name(option: str, name: str) -> str:
    if len(name) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
        raise KubeOptionError(f"{option} {name!r} is not a Kubernetes object name: use lowercase letters, digits, '-'")
    return name


def labels(options: KubeOptions) -> dict[str, str]:
    """Kubernetes' recommended labels; the first two select the pods."""
    return {
        **selector(options),
        "app.kubernetes.io/component": "runner",
        "app.kubernetes.io/part-of": "docker-model",
        "app.kubernetes.io/version": __version__,
        "app.kubernetes.io/managed-by": "docker-model",
    }


def selector(options: KubeOptions) -> dict[str, str]:
    return {"app.kubernetes.io/name": "docker-model-runner", "app.kubernetes.io/instance": options.name}


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def common_env(options: KubeOptions) -> list[dict[str, Any]]:
    """What both containers need: where the store and the state are, the port, the accelerator."""
    return [
        {"name": "MODELS_PATH", "value": MODELS_DIR},
        {"name": "DOCKER_MODEL_STATE_DIR", "value": STATE_DIR},
        {"name": "MODEL_RUNNER_PORT", "value": str(options.port)},
        {"name": "DOCKER_MODEL_GPU", "value": options.gpu},
        {"name": "HOME", "value": TMP_DIR},
        {"name": "TMPDIR", "value": TMP_DIR},
    ]


def volume_mounts(options: KubeOptions, pull: bool) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "models", "mountPath": MODELS_DIR},
        {"name": "state", "mountPath": STATE_DIR},
        # The runner's token file (`runner_token.py` reads it from the state directory, never writes over it).
        {"name": "token", "mountPath": f"{STATE_DIR}/{TOKEN_KEY}", "subPath": TOKEN_KEY, "readOnly": True},
        {"name": "tmp", "mountPath": TMP_DIR},
    ]
    if pull and options.registry_secret:
        mounts.append({"name": "registry-config", "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True})
    return mounts


def pull_container(options: KubeOptions) -> dict[str, Any]:
    """`docker-model pull MODEL`, then `stop-runner` for the runner the pull started on the pod's loopback."""
    cli = f"{IMAGE_ROOT}/bin/docker-model"
    env = [{"name": "MODEL", "value": options.model}, *common_env(options)]
    if options.registry_secret:
        env.append({"name": "DOCKER_CONFIG", "value": REGISTRY_CONFIG_DIR})
    return {
        "name": "pull-model",
        "image": options.runner_image,
        "command": ["/bin/sh", "-c"],
        "args": [f'{cli} pull "$MODEL" && exec {cli} stop-runner'],
        "env": env,
        "volumeMounts": volume_mounts(options, pull=True),
        "securityContext": container_security(),
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    }


def runner_container(options: KubeOptions) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 5}
    resources: dict[str, Any] = copy.deepcopy(DEFAULT_RESOURCES)
    if options.gpu == "cuda":
        resources["limits"]["nvidia.com/gpu"] = 1
    return {
        "name": "runner",
        "image": options.runner_image,
        "command": [f"{IMAGE_ROOT}/bin/python", "-I", "-u", "-m", "docker_model.runner"],
        # The wildcard address: every route but `GET /` needs the token (its scope is `all`).
        "args": ["--host", "0.0.0.0", f"--load={options.model}"],
        "env": [
            *common_env(options),
            # The runner sizes models to its budget: the container's memory limit, not the node's free memory
            # it would read otherwise (a model over the limit would get the container killed, not refused).
            {
                "name": "DOCKER_MODEL_MEMORY_BUDGET",
                "valueFrom": {"resourceFieldRef": {"containerName": "runner", "resource": "limits.memory"}},
            },
        ],
        "ports": [{"name": "http", "containerPort": options.port, "protocol": "TCP"}],
        "readinessProbe": {**probe, "failureThreshold": 3},
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 6},
        "volumeMounts": volume_mounts(options, pull=False),
        "securityContext": container_security(),
        "resources": resources,
    }


def volumes(options: KubeOptions) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"name": "models", "emptyDir": {}},
        {"name": "state", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {
            "name": "token",
            "secret": {
                "secretName": options.token_secret,
                "items": [{"key": TOKEN_KEY, "path": TOKEN_KEY}],
                "defaultMode": 0o440,
            },
        },
    ]
    if options.registry_secret:
        items.append(
            {
                "name": "registry-config",
                "secret": {
                    "secretName": options.registry_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                    "defaultMode": 0o440,
                },
            }
        )
    return items


def deployment(options: KubeOptions) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        "initContainers": [pull_container(options)],
        "containers": [runner_container(options)],
        "volumes": volumes(options),
    }
    if options.registry_secret:
        pod_spec["imagePullSecrets"] = [{"name": options.registry_secret}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": options.name, "labels": labels(options)},
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": selector(options)},
            "template": {"metadata": {"labels": labels(options)}, "spec": pod_spec},
        },
    }


def service(options: KubeOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": options.name, "labels": labels(options)},
        "spec": {
            "type": "ClusterIP",
            "selector": selector(options),
            "ports": [{"name": "http", "port": DEFAULT_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def kustomization() -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["deployment.yaml", "service.yaml"],
    }


def header(options: KubeOptions) -> str:
    return (
        f"# Generated by `docker model generate kube` {__version__} for {options.model}.\n"
        f"# The runner needs the Secret {options.token_secret!r} (key {TOKEN_KEY!r}) before the pods start;\n"
        "# every client of the Service sends it as `Authorization: Bearer TOKEN` (only GET / is open).\n"
    )


def readme(options: KubeOptions) -> str:
    url = f"http://{options.name}:{DEFAULT_PORT}"
    registry = (
        f"The init container pulls with the registry credentials of the Secret `{options.registry_secret}` "
        "(type kubernetes.io/dockerconfigjson), which also pulls the image.\n"
        if options.registry_secret
        else "The model's registry is reached without credentials (use --registry-secret for a private one).\n"
    )
    return (
        f"# {options.name}\n\n"
        f"{options.replicas} pod(s) of the docker-model runner serving {options.model}, "
        f"behind the Service {url}.\n\n"
        "Create the token first; the runner listens on the pod's address, where every route but the health\n"
        "check `GET /` needs it, so every client of the Service sends `Authorization: Bearer TOKEN`:\n\n"
        f"    kubectl create secret generic {options.token_secret} --from-literal={TOKEN_KEY}=$(openssl rand -hex 32)\n"
        "    kubectl apply -k .\n\n"
        f"{registry}"
        f"Image: {options.runner_image} (build it with the Dockerfile of docker-model).\n"
    )


def render(document: dict[str, Any], options: KubeOptions) -> str:
    return header(options) + json.dumps(document, indent=2) + "\n"


def manifests(options: KubeOptions) -> dict[str, str]:
    """The files of the output folder, by name."""
    return {
        "deployment.yaml": render(deployment(options), options),
        "service.yaml": render(service(options), options),
        "kustomization.yaml": render(kustomization(), options),
        "README.md": readme(options),
    }
