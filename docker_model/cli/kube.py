"""`docker model generate kube`: write Kubernetes manifests that serve a model from N runner pods, or from one
runner pod pooling K rpc-server pods."""

from __future__ import annotations

from pathlib import Path

import click

from docker_model.cli.kube_files import manifests
from docker_model.cli.kube_manifests import (
    DEFAULT_PORT,
    DEFAULT_TOKEN_SECRET,
    KubeOptionError,
    KubeOptions,
    check_port,
    check_secret_name,
    parse_gpu,
    parse_replicas,
    parse_rpc_workers,
)
from docker_model.cli.lazy_group import LazyCommand, LazyGroup
from docker_model.reference import parse_reference

generate = LazyGroup(
    "generate",
    lazy_commands={
        "kube": LazyCommand("docker_model.cli.kube:kube", "Write Kubernetes manifests that serve a model"),
    },
    aliases={},
    help="Generate deployment files for serving models elsewhere.",
)


@click.command()
@click.argument("model")
@click.option("-o", "--output", "output", required=True, metavar="DIR", help="The folder to write the manifests to")
@click.option("--replicas", default="1", show_default=True, help="Runner pods behind the Service")
@click.option("--image", help="The runner image (default: docker-model-runner:VERSION, -cuda with --gpu cuda)")
@click.option("--gpu", default="none", show_default=True, help="none, or cuda: each pod requests one NVIDIA GPU")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="The runner's port in the pod")
@click.option("--token-secret", default=DEFAULT_TOKEN_SECRET, show_default=True, help="The Secret holding the token")
@click.option("--registry-secret", help="A docker-config Secret: credentials for the model's registry and the image")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty (its files of the same name)")
@click.option(
    "--rpc-workers",
    metavar="K",
    help="rpc-server pods that the one runner pod pools for the model's layers (a StatefulSet)",
)
def kube(
    model: str,
    output: str,
    replicas: str,
    image: str | None,
    gpu: str,
    port: int,
    token_secret: str,
    registry_secret: str | None,
    force: bool,
    rpc_workers: str | None,
) -> None:
    """Write manifests and a kustomization.yaml into DIR: MODEL served by --replicas runner pods behind a
    ClusterIP Service, or by one runner pooling --rpc-workers rpc-server pods; apply them with
    `kubectl apply -k DIR`."""
    try:
        parse_reference(model)  # an invalid name is one line (InvalidReferenceError, in main)
        options = KubeOptions(
            model=model,
            replicas=parse_replicas(replicas),
            image=image,
            gpu=parse_gpu(gpu),
            port=check_port(port),
            token_secret=check_secret_name("--token-secret", token_secret),
            registry_secret=None
            if registry_secret is None
            else check_secret_name("--registry-secret", registry_secret),
            rpc_workers=0 if rpc_workers is None else parse_rpc_workers(rpc_workers),
        )
    except KubeOptionError as error:
        raise click.ClickException(str(error)) from None
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise click.ClickException(f"{folder} is not a folder: choose another with -o")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise click.ClickException(f"{folder} is not empty: choose an empty folder, or add --force to write into it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in manifests(options).items():
            (folder / name).write_text(text)
    except OSError as error:
        raise click.ClickException(f"cannot write to {folder}: {error.strerror or error}") from None
    click.echo(f"Wrote {options.name}'s manifests to {folder}; apply them with: kubectl apply -k {folder}")
    click.echo(
        f"First create the token: kubectl create secret generic {options.token_secret} "
        "--from-literal=token=$(openssl rand -hex 32); clients of the Service send it as a Bearer token"
    )
    if options.rpc_workers:
        click.echo(
            f"Warning: the rpc-server pods accept any connection that reaches them (llama.cpp's RPC protocol has no "
            f"authentication): the NetworkPolicy {options.rpc_name} admits only the runner's pods, which needs a "
            "network plugin that enforces NetworkPolicies",
            err=True,
        )
    if image is None:
        click.echo(
            f"Warning: no registry publishes the image {options.runner_image}: build it from deploy/Dockerfile in "
            "docker-model's source, push it to a registry your cluster pulls from, and name it with --image",
            err=True,
        )
