"""The rpc-server pods of `docker model generate kube --rpc-workers K`: pure functions, as kube_manifests.py.

K pods of a StatefulSet each run `docker-model rpc-server` on their pod IP; a headless Service gives them the
stable names the head (the one runner pod) pools through `DOCKER_MODEL_RPC`. The RPC protocol has no
authentication and llama.cpp's RPC server has had memory-safety bugs, so a NetworkPolicy admits the port
only from the head's pods.
"""

from __future__ import annotations

from typing import Any

from docker_model.cli.kube_manifests import (
    IMAGE_ROOT,
    STATE_DIR,
    TMP_DIR,
    KubeOptions,
    container_security,
    labels,
    memory_limit,
    pod_spec,
    resources,
    selector,
)
from docker_model.rpc_protocol import DEFAULT_RPC_PORT

COMPONENT = "rpc-server"
# Ready once the server listens: a line of /proc/net/tcp{,6} with the port as its local address and the state
# 0A (LISTEN), read in the pod's own network namespace. Not a TCP probe: the server serves one client at a time,
# and each probe connection would take that place from the head while it lasts.
LISTENING = "printf ':%04X [0-9A-F]*:[0-9A-F]* 0A \\n' \"$RPC_PORT\" | grep -qsf - /proc/net/tcp /proc/net/tcp6"


def rpc_container(options: KubeOptions) -> dict[str, Any]:
    """`docker-model rpc-server` on the pod's IP. It serves the GPU with `--gpu cuda` (offering its memory), else
    the CPU, offering the container's memory limit rather than the node's memory it would report otherwise."""
    cpu = options.gpu == "none"
    return {
        "name": COMPONENT,
        "image": options.runner_image,
        "command": [f"{IMAGE_ROOT}/bin/docker-model", "rpc-server"],
        # The kubelet expands $(NAME) from the variables below.
        "args": [
            *("--host", "$(POD_IP)", "--allow-remote", "--port", "$(RPC_PORT)"),
            *(("--mem", "$(RPC_OFFER)") if cpu else ()),
        ],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "RPC_PORT", "value": str(DEFAULT_RPC_PORT)},
            *([memory_limit("RPC_OFFER", COMPONENT)] if cpu else []),
            {"name": "DOCKER_MODEL_STATE_DIR", "value": STATE_DIR},  # the tensor cache's default folder
            {"name": "HOME", "value": TMP_DIR},
            {"name": "TMPDIR", "value": TMP_DIR},
        ],
        "ports": [{"name": "rpc", "containerPort": DEFAULT_RPC_PORT, "protocol": "TCP"}],
        # No liveness probe: a server that exits restarts the container anyway, and one that hangs cannot be told
        # from one busy computing for the head without taking the head's place as its one client.
        "readinessProbe": {"exec": {"command": ["/bin/sh", "-c", LISTENING]}, "periodSeconds": 10},
        "volumeMounts": [{"name": "state", "mountPath": STATE_DIR}, {"name": "tmp", "mountPath": TMP_DIR}],
        "securityContext": container_security(),
        "resources": resources(options),
    }


def rpc_statefulset(options: KubeOptions) -> dict[str, Any]:
    pod = pod_spec(
        options,
        containers=[rpc_container(options)],
        volumes=[{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": options.rpc_name, "labels": labels(options, COMPONENT)},
        "spec": {
            "serviceName": options.rpc_name,
            "replicas": options.rpc_workers,
            "podManagementPolicy": "Parallel",  # the pods need no order: the head waits for all of them
            "selector": {"matchLabels": selector(options, COMPONENT)},
            "template": {"metadata": {"labels": labels(options, COMPONENT)}, "spec": pod},
        },
    }


def rpc_service(options: KubeOptions) -> dict[str, Any]:
    """Headless: no load balancing (each pod holds its own part of the model), one DNS name per pod."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": options.rpc_name, "labels": labels(options, COMPONENT)},
        "spec": {
            "clusterIP": "None",
            "selector": selector(options, COMPONENT),
            "ports": [{"name": "rpc", "port": DEFAULT_RPC_PORT, "targetPort": "rpc", "protocol": "TCP"}],
        },
    }


def rpc_network_policy(options: KubeOptions) -> dict[str, Any]:
    """The rpc pods admit the RPC port from the head's pods and nothing else (egress is left open)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": options.rpc_name, "labels": labels(options, COMPONENT)},
        "spec": {
            "podSelector": {"matchLabels": selector(options, COMPONENT)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": selector(options)}}],
                    "ports": [{"protocol": "TCP", "port": DEFAULT_RPC_PORT}],
                }
            ],
        },
    }


def rpc_readme(options: KubeOptions) -> str:
    return (
        f"The runner pools {options.rpc_workers} rpc-server pod(s) (the StatefulSet {options.rpc_name}) for the "
        f"model's layers,\nthrough DOCKER_MODEL_RPC={options.rpc_endpoints}.\n"
        "The RPC protocol has no authentication and sends prompts' activations in clear text: the NetworkPolicy\n"
        f"{options.rpc_name} admits port {DEFAULT_RPC_PORT} only from the runner's pods, which needs a network "
        "plugin that enforces\nNetworkPolicies. Each rpc-server serves one client: keep the runner at one replica.\n"
    )
