"""`GET /engines/history`: the last 15 minutes of the runner's metrics, sampled every 5 s, and the alerts
they raise (`runner/metrics_history.py`); what the console's Monitor draws."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model.runner.api.common import state_of


async def history(request: Request) -> JSONResponse:
    state = state_of(request)
    return JSONResponse(state.history.report(state.scheduler.metrics.crashed, time.time()))


routes = [Route("/engines/history", history, methods=["GET"])]
