"""`GET /openapi.json`: the runner's routes as an OpenAPI 3.1 document.

Request and response bodies of the runner's own routes are the JSON shapes of `api_types` (one source
for the CLI, the runner and this document). The inference routes of each dialect are listed with an open
object body: OpenAI's, Anthropic's and Ollama's own specifications describe them (the test suite checks
the OpenAI routes against OpenAI's published one).
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model import __version__, api_types
from docker_model.runner.api import anthropic, inference, responses

COMPONENTS = "#/components/schemas/{model}"
OPEN_OBJECT: dict[str, Any] = {"type": "object"}

# (method, path, operation id, request body shape, 200 answer shape, query parameters)
RUNNER_OPERATIONS: list[tuple[str, str, str, Any, Any, dict[str, Any]]] = [
    ("get", "/models", "listModels", None, list[api_types.ModelInfo], {}),
    ("get", "/models/{name}", "getModel", None, api_types.ModelInfo, {}),
    ("delete", "/models/{name}", "deleteModel", None, None, {"force": {"type": "boolean"}}),
    (
        "post",
        "/models/{name}/tag",
        "tagModel",
        None,
        api_types.TagResult,
        {"repo": {"type": "string"}, "tag": {"type": "string"}},
    ),
    ("post", "/models/{name}/push", "pushModel", None, None, {}),
    ("post", "/models/create", "pullModel", api_types.CreateRequest, None, {}),
    ("delete", "/models/purge", "purgeModels", None, None, {"force": {"type": "boolean"}}),
    ("get", "/engines/status", "engineStatus", None, dict[str, str], {}),
    ("get", "/engines/ps", "runningModels", None, list[api_types.RunningModel], {}),
    ("get", "/engines/df", "diskUsage", None, api_types.DiskUsage, {}),
    ("post", "/engines/unload", "unloadModels", api_types.UnloadRequest, api_types.UnloadResult, {}),
    ("post", "/engines/_configure", "configureModel", api_types.ConfigureRequest, None, {}),
    ("get", "/engines/_configure", "configuredModels", None, api_types.ConfiguredModels, {"model": {"type": "string"}}),
    (
        "get",
        "/engines/_fit",
        "modelFit",
        None,
        api_types.FitReport,
        {"model": {"type": "string"}, "context_size": {"type": "integer"}},
    ),
    ("post", "/engines/_bridge", "openBridge", None, api_types.ListenerInfo, {}),
    ("get", "/version", "version", None, api_types.VersionInfo, {}),
]
DIALECT_OPERATIONS: list[tuple[str, str, str]] = [
    *(
        ("post", f"{prefix}/{endpoint}", f"openai{i}_{endpoint}")
        for i, prefix in enumerate(inference.PREFIXES)
        for endpoint in inference.ENDPOINTS
    ),
    *(("post", f"{prefix}/messages", f"anthropic{i}_messages") for i, prefix in enumerate(anthropic.PREFIXES)),
    *(
        ("post", f"{prefix}/messages/count_tokens", f"anthropic{i}_count")
        for i, prefix in enumerate(anthropic.PREFIXES)
    ),
    *(("post", f"{prefix}/responses", f"responses{i}") for i, prefix in enumerate(responses.PREFIXES)),
    *(
        ("post", f"/api/{word}", f"ollama_{word}")
        for word in ("chat", "generate", "embed", "embeddings", "show", "copy", "pull")
    ),
    ("delete", "/api/delete", "ollama_delete"),
]


def _parameters(path: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    found = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names]
    return found + [
        {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in query.items()
    ]


@functools.cache
def document() -> dict[str, Any]:
    shapes = {
        shape: TypeAdapter(shape) for _, _, _, *bodies, _ in RUNNER_OPERATIONS for shape in bodies if shape is not None
    }
    schemas, definitions = TypeAdapter.json_schemas(
        [(shape, "validation", adapter) for shape, adapter in shapes.items()], ref_template=COMPONENTS
    )
    paths: dict[str, dict[str, Any]] = {}
    for method, path, operation_id, request, answer, query in RUNNER_OPERATIONS:
        operation: dict[str, Any] = {"operationId": operation_id, "parameters": _parameters(path, query)}
        if request is not None:
            content = {"application/json": {"schema": schemas[(request, "validation")]}}
            operation["requestBody"] = {"required": True, "content": content}
        ok: dict[str, Any] = {"description": "OK"}
        if answer is not None:
            ok["content"] = {"application/json": {"schema": schemas[(answer, "validation")]}}
        operation["responses"] = {"200": ok, "default": {"description": 'An error: {"error": ...}'}}
        paths.setdefault(path, {})[method] = operation
    for method, path, operation_id in DIALECT_OPERATIONS:
        body = {"required": True, "content": {"application/json": {"schema": OPEN_OBJECT}}}
        paths.setdefault(path, {})[method] = {
            "operationId": operation_id,
            "requestBody": body,
            "responses": {"200": {"description": "The dialect's own answer"}},
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Docker Model Runner (docker-model)", "version": __version__},
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document())


routes = [Route("/openapi.json", openapi, methods=["GET"])]
