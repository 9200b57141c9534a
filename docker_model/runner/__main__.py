"""`python -m docker_model.runner`: the runner host process, serving the API over TCP."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from docker_model import settings
from docker_model.runner.app import create_app
from docker_model.runner.backend.handoff import HandOverProtocol


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m docker_model.runner", description="The docker-model runner.")
    parser.add_argument("--host", default=settings.DEFAULT_RUNNER_BIND, help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: MODEL_RUNNER_PORT or 12434)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        port = args.port if args.port is not None else settings.runner_port()
        app = create_app(settings.models_path(), settings.state_dir())
    except settings.SettingsError as error:
        parser.error(str(error))
    uvicorn.run(
        app,
        host=args.host,
        port=port,
        http=HandOverProtocol,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
