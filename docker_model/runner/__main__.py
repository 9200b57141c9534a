"""`python -m docker_model.runner`: the runner host process, serving the API over TCP.

It binds its port itself, before anything else: a port that is taken is a one-line error naming it, and
the pid file is written only by the process that holds the port. With `--load MODEL` (what a cold
`docker model run` asks for) it then launches that model's worker, and only then imports its web
stack: the two load side by side.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from docker_model import runner_pid, runner_token, settings
from docker_model.distribution.errors import DistributionError
from docker_model.runner import accelerator as accelerators
from docker_model.runner.fit import ModelDoesNotFit
from docker_model.runner.launch import Prestarted, prestart
from docker_model.runner.listeners import ListenError, Listeners, bind

log = logging.getLogger("docker_model.runner")


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
    parser.add_argument(
        "--host", default=None, help="an address to listen on besides loopback (default: MODEL_RUNNER_BIND)"
    )
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: MODEL_RUNNER_PORT or 12434)")
    parser.add_argument("--load", metavar="MODEL", help="load this stored model as the runner starts")
    args = parser.parse_args()
    os.umask(0o077)  # what the runner and its workers create (store, state, logs, sockets) is the user's alone
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per health probe of a worker
    try:
        port = args.port if args.port is not None else settings.runner_port()
        models_path, state_dir, tls = settings.models_path(), settings.state_dir(), settings.tls_files()
        settings.gpu_mode()  # read again by the accelerator's detection: a bad value is one line here
        settings.huggingface_url()  # and these by the app (HF_ENDPOINT, DOCKER_MODEL_HUB_URL), once it listens
        settings.docker_hub_url()
        settings.rpc_servers()  # the runner-wide pool of RPC servers, read by the app
        listeners = Listeners.plan(args.host or settings.listen_address(), port, tls is not None)
    except (settings.SettingsError, ValueError) as error:
        parser.error(str(error))
    if tls is not None:
        check_tls(*tls)
    try:
        sockets = [bind(listener.address, port) for listener in listeners.items]
    except ListenError as error:
        sys.exit(str(error))
    try:
        token = runner_token.ensure_token()
        record = runner_pid.write_pid_file(port)
    except OSError as error:
        sys.exit(
            f"cannot write the runner's state in {state_dir}: {error.strerror or error}; free some space there "
            "or set DOCKER_MODEL_STATE_DIR to a writable folder"
        )
    for listener in listeners.items:
        log.info("listening on %s (pid %d; token needed: %s)", listener.url, record.pid, listener.token_scope)
    try:
        accelerator = accelerators.detect()
        prestarted = load_ahead(args.load, models_path, state_dir, accelerator) if args.load else None
        import uvicorn

        from docker_model.runner.app import create_app
        from docker_model.runner.handover import HandOverProtocol
        from docker_model.runner.server import RunnerServer

        config = uvicorn.Config(
            create_app(models_path, state_dir, listeners, token, accelerator, prestarted),
            http=HandOverProtocol,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=5,
            ssl_certfile=tls and str(tls[0]),
            ssl_keyfile=tls and str(tls[1]),
        )
        server = RunnerServer(config)
        listeners.start_serving = server.serve_socket
        server.run(sockets=sockets)
    finally:
        runner_pid.remove_pid_file(record)


def check_tls(cert: Path, key: Path) -> None:
    """A certificate and key that TLS cannot use stop the runner with one line, before it listens."""
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        sys.exit(
            f"cannot use the TLS certificate {cert} and key {key}: {error}; "
            "fix DOCKER_MODEL_TLS_CERT and DOCKER_MODEL_TLS_KEY, or unset both"
        )


if __name__ == "__main__":
    main()
