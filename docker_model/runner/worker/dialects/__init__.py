"""The API dialects a worker answers besides OpenAI's chat and completions: each a thin translation onto
the same chat path (`OpenAIHandlers.chat_choices`) and the same answers (`worker/answers.py`), shaping its
own responses and stream events. Each module gives `routes(api)`; the runner hands their requests over
to the worker at the same paths (see `runner/api/`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

if TYPE_CHECKING:
    from docker_model.runner.worker.routes import OpenAIHandlers


def dialect_routes(api: OpenAIHandlers) -> list[Route]:
    from . import anthropic, ollama, responses

    return [*ollama.routes(api), *anthropic.routes(api), *responses.routes(api)]
