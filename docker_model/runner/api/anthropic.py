"""Anthropic's Messages API, under `/anthropic/v1` and the alias `/v1`: routed by the `model` in the body as
the OpenAI routes are, and answered by the model's worker at `/v1/messages` (`worker/dialects/anthropic.py`).
Give Anthropic's SDK `http://127.0.0.1:12434/anthropic` (or the runner's own address) as its base URL."""

from __future__ import annotations

from starlette.routing import Route

from docker_model.runner.api.inference import complete

PREFIXES = ("/anthropic/v1", "/v1")


routes = [
    route
    for prefix in PREFIXES
    for route in (
        Route(f"{prefix}/messages", complete, methods=["POST"]),
        Route(f"{prefix}/messages/count_tokens", complete, methods=["POST"]),
    )
]
