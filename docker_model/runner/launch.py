"""How a model's worker is launched: its command line, and starting it, even before the runner is up.

Light on imports on purpose: `python -m docker_model.runner --load MODEL` (what a cold `docker model run`
starts) launches the model's worker before it imports its web stack, so that the two load side by side;
the scheduler then adopts that worker (`Prestarted`) as if it had started it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docker_model.distribution import Bundle, Model, Store
from docker_model.processes import own_process_group
from docker_model.runner.accelerator import Accelerator
from docker_model.runner.fit import ALL_LAYERS, Fit, Room, plan, shape_of, wanted_for
from docker_model.runner.memory import room_for_a_model
from docker_model.runner.model_settings import ModelSettings, SettingsBook
from docker_model.runner.runtime_flags import RPC_FLAGS, check_runtime_flags, without_flags
from docker_model.settings import memory_budget, rpc_servers

if TYPE_CHECKING:
    from docker_model.runner.rpc_pool import Placement

WORKER_MODULE = "docker_model.runner.worker"


@dataclass(frozen=True)
class WorkerSpec:
    """How to run one model. Runtime flags come last on the command line, so they win."""

    model_path: Path
    ctx_size: int = 4096
    parallel: int = 1
    n_gpu_layers: int = 0
    chat_template: Path | None = None
    runtime_flags: tuple[str, ...] = ()
    model_name: str | None = None
    model_id: str | None = None  # its short ID, in the IDs of the responses it keeps
    rpc: tuple[str, ...] = ()  # RPC servers (host:port) holding its layers, probed and leased by the runner
    tensor_split: tuple[float, ...] = ()  # each one's fraction of the layers

    def __post_init__(self) -> None:
        check_runtime_flags(self.runtime_flags)

    def argv(self, socket_path: Path) -> list[str]:
        # Isolated mode (-I), unbuffered (-u): only the installed package supplies the worker's code.
        args = [sys.executable, "-I", "-u", "-m", WORKER_MODULE, "--model", str(self.model_path)]
        args += ["--socket", str(socket_path), "--handoff-socket", str(handoff_path(socket_path))]
        args += ["--parent-pid", str(os.getpid())]
        args += ["--ctx-size", str(self.ctx_size), "--parallel", str(self.parallel)]
        args += ["--n-gpu-layers", str(self.n_gpu_layers)]
        if self.chat_template:
            args += ["--chat-template", str(self.chat_template)]
        if self.model_name:
            args += ["--model-name", self.model_name]
        if self.model_id:
            args += ["--model-id", self.model_id]
        if self.rpc:
            args += ["--rpc", ",".join(self.rpc), "--tensor-split", ",".join(f"{f:.6g}" for f in self.tensor_split)]
        return args + list(self.runtime_flags)


def handoff_path(socket_path: Path) -> Path:
    """Where the worker whose HTTP socket is `socket_path` takes client connections handed over."""
    return socket_path.with_suffix(".handoff")


def spec_for(
    bundle: Bundle,
    settings: ModelSettings,
    accelerator: Accelerator,
    fit: Fit,
    name: str,
    model_id: str | None = None,
    placement: Placement | None = None,
) -> WorkerSpec:
    """The worker a model gets, from its stored settings, the machine's accelerator, its fit in memory and
    its pool of RPC servers (which takes every layer; the pool the runner chose replaces the flags' own)."""
    return WorkerSpec(
        model_path=bundle.gguf_path,
        ctx_size=fit.ctx_per_seq,
        parallel=fit.parallel,
        n_gpu_layers=ALL_LAYERS if accelerator.gpu_offload or placement else 0,
        chat_template=bundle.template_path,
        runtime_flags=without_flags(settings.runtime_flags, RPC_FLAGS),
        model_name=name,
        model_id=model_id,
        rpc=placement.pool.addresses if placement else (),
        tensor_split=placement.fractions if placement else (),
    )


def spawn(spec: WorkerSpec, socket_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the worker process, logging to `log_path`; it serves on `socket_path` once loaded."""
    socket_path.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            spec.argv(socket_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            **own_process_group(),  # the runner's session: see docker_model/processes.py
            cwd="/",
        )


def socket_path_for(socket_dir: Path, model: Model) -> Path:
    return socket_dir / f"{model.short_id}.sock"


def log_path_for(log_dir: Path, model: Model) -> Path:
    return log_dir / f"model-{model.short_id}.log"


SOCKET_DIR_PREFIX = "docker-model-"


def new_socket_dir() -> Path:
    """A fresh folder for the workers' sockets: short, as UNIX socket paths are limited. Its name carries
    the runner's pid, so that the folders of runners that died without cleaning up (`kill -9`) are found
    and removed here."""
    remove_stale_socket_dirs()
    return Path(tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{os.getpid()}-"))


def remove_stale_socket_dirs() -> None:
    """Remove this user's socket folders whose runner is gone."""
    import psutil

    for folder in Path(tempfile.gettempdir()).glob(f"{SOCKET_DIR_PREFIX}*-*"):
        pid = folder.name.removeprefix(SOCKET_DIR_PREFIX).partition("-")[0]
        try:
            mine = folder.is_dir() and folder.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def settings_path(state_dir: Path) -> Path:
    return state_dir / "model-settings.json"


def log_dir(state_dir: Path) -> Path:
    return state_dir / "logs"


@dataclass(frozen=True)
class Prestarted:
    """A worker launched before the runner served anything, for the scheduler to adopt."""

    model: Model
    name: str
    spec: WorkerSpec
    fit: Fit
    process: subprocess.Popen[bytes]
    socket_dir: Path


def prestart(name: str, models_path: Path, state_dir: Path, accelerator: Accelerator, parallel: int) -> Prestarted:
    """Launch the worker of the stored model `name`, as the scheduler would, sized to the memory it may use
    (nothing else is loaded yet). Raises the store's errors (DistributionError: a model that is not there;
    ValueError: a bad name, or a model whose layers go to RPC servers, which only the scheduler probes and
    leases), ModelDoesNotFit and OSError."""
    store = Store(models_path)
    model = store.get(name)
    settings = SettingsBook(settings_path(state_dir)).get(model.id)
    from docker_model.runner.rpc_pool import resolve

    if resolve(settings, rpc_servers()) is not None:
        raise ValueError("its layers go to RPC servers: its first request loads it")
    bundle = store.bundle(model)
    wanted = wanted_for(model.config, settings, parallel, accelerator.gpu_offload)
    fit = plan(shape_of(bundle.gguf_path), wanted, Room(room_for_a_model(memory_budget(), 0)))
    spec = spec_for(bundle, settings, accelerator, fit, name, model.short_id)
    socket_dir = new_socket_dir()
    process = spawn(spec, socket_path_for(socket_dir, model), log_path_for(log_dir(state_dir), model))
    return Prestarted(model, name, spec, fit, process, socket_dir)
