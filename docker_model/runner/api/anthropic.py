"""Anthropic's Messages API, under `/anthropic/v1` and the alias `/v1`: routed by the `model` in the body as
the OpenAI routes are, and answered by the model's worker at `/v1/messages` (`worker/dialects/anthropic.py`).
Give Anthropic's SDK `http://127.0.0.1:12434/anthropic` (or the runner's own address) as its base URL."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from docker_model.runner.api.inference import ReleaseAfter, hand_over

PREFIXES = ("/anthropic/v1", "/v1")


async def messages(request: Request) -> ReleaseAfter:
    return await hand_over(request, "/v1/messages")


async def count_tokens(request: Request) -> ReleaseAfter:
    return await hand_over(request, "/v1/messages/count_tokens")


routes = [
    route
    for prefix in PREFIXES
    for route in (
        Route(f"{prefix}/messages", messages, methods=["POST"]),
        Route(f"{prefix}/messages/count_tokens", count_tokens, methods=["POST"]),
    )
]
