"""`python -m docker_model.runner`: the runner host process, serving the API over TCP.

It binds its port itself, before anything else: a port that is taken is a one-line error naming it, and
the pid file is written only by the process that holds the port. With `--load MODEL` (what a cold
`docker model run` asks for) it then launches that model's worker, and only then imports its web
stack: the two load side by side.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

from docker_model import runner_pid, settings
from docker_model.distribution.errors import DistributionError
from docker_model.runner import accelerator as accelerators
from docker_model.runner.fit import ModelDoesNotFit
from docker_model.runner.launch import Prestarted, prestart

log = logging.getLogger("docker_model.runner")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        sys.exit(
            f"cannot listen on {host}:{port}: {error.strerror or error}; "
            "stop what uses that port or choose another with MODEL_RUNNER_PORT"
        )
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def load_ahead(
    name: str, models_path: Path, state_dir: Path, accelerator: accelerators.Accelerator
) -> Prestarted | None:
    """Launch `name`'s worker now; a model that cannot be launched is left to the first request for it,
    which reports why (or pulls it first)."""
    try:
        return prestart(name, models_path, state_dir, accelerator, settings.parallel_requests())
    except (DistributionError, ModelDoesNotFit, ValueError, OSError) as error:
        log.info("not loading %s ahead: %s", name, error)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m docker_model.runner", description="The docker-model runner.")
    parser.add_argument("--host", default=settings.DEFAULT_RUNNER_BIND, help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: MODEL_RUNNER_PORT or 12434)")
    parser.add_argument("--load", metavar="MODEL", help="load this stored model as the runner starts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        port = args.port if args.port is not None else settings.runner_port()
        models_path, state_dir = settings.models_path(), settings.state_dir()
    except settings.SettingsError as error:
        parser.error(str(error))
    listener = bind(args.host, port)
    try:
        record = runner_pid.write_pid_file(port)
    except OSError as error:
        sys.exit(
            f"cannot write the pid file {runner_pid.pid_path(port)}: {error.strerror}; free some space there "
            "or set DOCKER_MODEL_STATE_DIR to a writable folder"
        )
    log.info("listening on http://%s:%d (pid %d)", args.host, port, record.pid)
    try:
        accelerator = accelerators.detect()
        prestarted = load_ahead(args.load, models_path, state_dir, accelerator) if args.load else None
        import uvicorn

        from docker_model.runner.app import create_app
        from docker_model.runner.handover import HandOverProtocol

        config = uvicorn.Config(
            create_app(models_path, state_dir, accelerator, prestarted),
            http=HandOverProtocol,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        runner_pid.remove_pid_file(record)


if __name__ == "__main__":
    main()
