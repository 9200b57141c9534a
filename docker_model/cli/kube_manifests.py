"""Kubernetes manifests for `docker model generate kube`: the options, and pure functions from them to the
runner's documents (kube_rpc.py adds the rpc-server pods', kube_files.py writes them as files).

N runner pods (a Deployment) behind a ClusterIP Service. Each pod pulls its model in an init container
(`docker-model pull`, the plugin run directly, which starts a runner on the pod's loopback for the pull
and stops it) into an emptyDir shared with the runner container. The runner listens on the wildcard
address, so every route but the health check `GET /` needs the runner's token (a wildcard address's token scope is
`all`); the token comes from a Secret mounted as the runner's token file, and registry credentials from a
docker-config Secret, both by name only.

With `rpc_workers`, the one runner pod (the head) pools K rpc-server pods for its model, named in the
runner-wide pool setting `DOCKER_MODEL_RPC` by the stable names their headless Service gives them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from docker_model import __version__
from docker_model.reference import parse_reference
from docker_model.rpc_protocol import DEFAULT_RPC_PORT

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
# llama.cpp schedules at most 16 devices for a model; the head's CPU and GPU take up to two of them.
MAX_RPC_WORKERS = 14
# A StatefulSet's name goes into its pods' `controller-revision-hash` label with an 11-character suffix.
MAX_STATEFULSET_NAME = 52


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
    rpc_workers: int = 0  # rpc-server pods pooled by the one runner pod

    def __post_init__(self) -> None:
        if self.rpc_workers and self.replicas > 1:
            raise KubeOptionError(
                f"--rpc-workers cannot be used with --replicas {self.replicas}: an rpc-server serves one client "
                "at a time, so runner replicas cannot share workers; use --replicas 1, or no --rpc-workers"
            )

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
    def rpc_name(self) -> str:
        """The rpc-server StatefulSet's and its headless Service's name."""
        return f"{self.name[: MAX_STATEFULSET_NAME - 4].rstrip('-')}-rpc"

    @property
    def rpc_endpoints(self) -> str:
        """The head's pool in `DOCKER_MODEL_RPC`'s syntax: each rpc pod's stable name, short enough to resolve
        through the pods' DNS search path in whatever namespace the manifests are applied to."""
        return ",".join(f"{self.rpc_name}-{i}.{self.rpc_name}:{DEFAULT_RPC_PORT}" for i in range(self.rpc_workers))

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


def parse_rpc_workers(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_RPC_WORKERS:
        raise KubeOptionError(
            f"--rpc-workers must be a whole number of rpc-server pods from 1 to {MAX_RPC_WORKERS} "
            f"(llama.cpp's limit of devices for one model), not {value!r}"
        )
    return workers


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


def labels(options: KubeOptions, component: str = "runner") -> dict[str, str]:
    """Kubernetes' recommended labels; the first two select the pods."""
    return {
        **selector(options, component),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "docker-model",
        "app.kubernetes.io/version": __version__,
        "app.kubernetes.io/managed-by": "docker-model",
    }


def selector(options: KubeOptions, component: str = "runner") -> dict[str, str]:
    return {"app.kubernetes.io/name": f"docker-model-{component}", "app.kubernetes.io/instance": options.name}


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


def memory_limit(variable: str, container: str) -> dict[str, Any]:
    """`variable` holds the container's memory limit, in bytes."""
    return {
        "name": variable,
        "valueFrom": {"resourceFieldRef": {"containerName": container, "resource": "limits.memory"}},
    }


def resources(options: KubeOptions) -> dict[str, Any]:
    """The documented defaults, and one NVIDIA GPU with `--gpu cuda`."""
    limits: dict[str, Any] = copy.deepcopy(DEFAULT_RESOURCES)
    if options.gpu == "cuda":
        limits["limits"]["nvidia.com/gpu"] = 1
    return limits


def runner_container(options: KubeOptions) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 5}
    pool = [{"name": "DOCKER_MODEL_RPC", "value": options.rpc_endpoints}] if options.rpc_workers else []
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
            memory_limit("DOCKER_MODEL_MEMORY_BUDGET", "runner"),
            *pool,
        ],
        "ports": [{"name": "http", "containerPort": options.port, "protocol": "TCP"}],
        "readinessProbe": {**probe, "failureThreshold": 3},
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 6},
        "volumeMounts": volume_mounts(options, pull=False),
        "securityContext": container_security(),
        "resources": resources(options),
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


def pod_spec(options: KubeOptions, **containers_and_volumes: Any) -> dict[str, Any]:
    """A pod of the manifests: non-root, no service account token, the image pulled with the registry Secret."""
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        **containers_and_volumes,
    }
    if options.registry_secret:
        spec["imagePullSecrets"] = [{"name": options.registry_secret}]
    return spec


def deployment(options: KubeOptions) -> dict[str, Any]:
    pod = pod_spec(
        options,
        initContainers=[pull_container(options)],
        containers=[runner_container(options)],
        volumes=volumes(options),
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": options.name, "labels": labels(options)},
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": selector(options)},
            "template": {"metadata": {"labels": labels(options)}, "spec": pod},
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
