"""Assembles the runner: its shared state, its routes and middleware, and its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from docker_model import __version__, distribution, settings
from docker_model.api_types import VersionInfo
from docker_model.runner import accelerator as accelerators
from docker_model.runner import launch
from docker_model.runner.api import (
    anthropic,
    archive,
    engines,
    history,
    inference,
    models,
    ollama,
    openapi,
    recent,
    responses,
    rpc,
    sizing,
    store_admin,
)
from docker_model.runner.api.access import AccessGuard
from docker_model.runner.api.error_table import EXPECTED_ERRORS, handle_error
from docker_model.runner.api.middleware import BodyLimit
from docker_model.runner.console.routes import ConsoleHeaders, console_routes
from docker_model.runner.listeners import Listeners
from docker_model.runner.metrics import RequestCounter, metrics_route
from docker_model.runner.metrics_history import sample_forever
from docker_model.runner.model_settings import SettingsBook
from docker_model.runner.scheduler import Scheduler
from docker_model.runner.state import RunnerState
from docker_model.runner.watchdog import Watchdog

log = logging.getLogger(__name__)


async def root(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Docker Model Runner is running")


async def version(request: Request) -> JSONResponse:
    state = request.app.state.runner
    engine = f"llama.cpp (llama-cpp-python {engines.engine_version()}, {state.accelerator.kind})"
    info: VersionInfo = {
        "version": __version__,
        "engine": engine,
        "models_path": str(state.store.root),
        "listeners": [listener.describe() for listener in state.listeners.items],
        "container_url": state.listeners.container_url(),
    }
    return JSONResponse(info)


def build_state(
    models_path: Path,
    state_dir: Path,
    accelerator: accelerators.Accelerator,
    listeners: Listeners,
    prestarted: launch.Prestarted | None = None,
) -> RunnerState:
    store = distribution.Store(models_path)
    model_settings = SettingsBook(launch.settings_path(state_dir))
    scheduler = Scheduler(
        store,
        model_settings,
        accelerator,
        log_dir=launch.log_dir(state_dir),
        max_loaded=settings.max_loaded_models(),
        parallel=settings.parallel_requests(),
        prestarted=prestarted,
        memory_budget=settings.memory_budget(),
        rpc_servers=settings.rpc_servers(),
    )
    registry = distribution.RegistryClient(store)
    return RunnerState(store, registry, accelerator, model_settings, scheduler, listeners)


def create_app(
    models_path: Path,
    state_dir: Path,
    listeners: Listeners,
    token: str,
    accelerator: accelerators.Accelerator | None = None,
    prestarted: launch.Prestarted | None = None,
) -> Starlette:
    """The runner's app, serving on `listeners` and checking `token` where they ask for it; `prestarted`:
    a model's worker launched already, loaded as the app starts."""
    accelerator = accelerator or accelerators.detect()
    log.info(
        "accelerator: %s (%s)%s",
        accelerator.kind,
        accelerator.detail,
        f"; {accelerator.problem}" if accelerator.problem else "",
    )
    state = build_state(models_path, state_dir, accelerator, listeners, prestarted)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.scheduler.load_prestarted()
        reaper = asyncio.create_task(state.scheduler.reap_forever())
        watchdog = Watchdog(settings.hung_worker_seconds())
        watcher = asyncio.create_task(watchdog.watch_forever(state.scheduler.busy_workers))
        sampler = asyncio.create_task(sample_forever(state.history, state.scheduler))
        try:
            yield
        finally:
            sampler.cancel()
            watcher.cancel()
            reaper.cancel()
            await state.scheduler.close()

    app = Starlette(
        routes=[
            Route("/", root, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metrics", metrics_route, methods=["GET"]),
            *archive.routes,  # before models': `/models/{name}/export` before the catch-all GET
            *store_admin.routes,
            *models.routes,
            *engines.routes,
            *sizing.routes,
            *rpc.routes,
            *inference.routes,
            *anthropic.routes,
            *ollama.routes,
            *responses.routes,
            *recent.routes,
            *history.routes,
            *openapi.routes,
            *console_routes(),
        ],
        middleware=[
            Middleware(RequestCounter, metrics=state.scheduler.metrics),
            Middleware(ConsoleHeaders),  # outside the guard: its refusals carry the console's headers too
            Middleware(AccessGuard, listeners=listeners, token=token, console_key=state.console_key),
            Middleware(BodyLimit),
        ],
        exception_handlers={
            **dict.fromkeys(EXPECTED_ERRORS, handle_error),  # HTTPException: unknown routes and methods too
            Exception: handle_error,  # anything unexpected still answers with a JSON error body
        },
        lifespan=lifespan,
    )
    app.state.runner = state
    return app
