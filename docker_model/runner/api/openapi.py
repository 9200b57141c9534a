"""`GET /openapi.json`: the runner's routes as an OpenAPI 3.1 document.

Every route the app has is listed, read from the app itself. The runner's own routes carry the request and
response shapes of `api_types` (one source for the CLI, the runner and this document); the others (the
inference routes of each dialect, whose vendors' specifications describe them; the Prometheus text of
`/metrics`) get an open JSON object body when they take one.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from docker_model import __version__, api_types

COMPONENTS = "#/components/schemas/{model}"
OPEN_OBJECT: dict[str, Any] = {"type": "object"}

# (method, path) -> (operation id, request body shape, 200 answer shape, query parameters)
DESCRIBED: dict[tuple[str, str], tuple[str, Any, Any, dict[str, Any]]] = {
    ("get", "/models"): ("listModels", None, list[api_types.ModelInfo], {}),
    ("get", "/models/{name}"): ("getModel", None, api_types.ModelInfo, {}),
    ("delete", "/models/{name}"): ("deleteModel", None, None, {"force": {"type": "boolean"}}),
    ("post", "/models/{name}/tag"): (
        "tagModel",
        None,
        api_types.TagResult,
        {"repo": {"type": "string"}, "tag": {"type": "string"}},
    ),
    ("post", "/models/{name}/push"): ("pushModel", None, None, {}),
    ("post", "/models/create"): ("pullModel", api_types.CreateRequest, None, {}),
    ("delete", "/models/purge"): ("purgeModels", None, None, {"force": {"type": "boolean"}}),
    ("get", "/models/{name}/export"): ("exportModel", None, None, {}),
    ("post", "/models/_check"): ("checkStore", None, api_types.CheckReport, {"repair": {"type": "boolean"}}),
    ("post", "/models/_prune"): ("pruneModels", api_types.PruneRequest, api_types.PruneResult, {}),
    ("get", "/engines/status"): ("engineStatus", None, dict[str, str], {}),
    ("get", "/engines/ps"): ("runningModels", None, list[api_types.RunningModel], {}),
    ("get", "/engines/df"): ("diskUsage", None, api_types.DiskUsage, {}),
    ("get", "/engines/rpc"): ("rpcServers", None, list[api_types.RpcEndpointStatus], {}),
    ("post", "/engines/unload"): ("unloadModels", api_types.UnloadRequest, api_types.UnloadResult, {}),
    ("post", "/engines/_configure"): ("configureModel", api_types.ConfigureRequest, None, {}),
    ("get", "/engines/_configure"): (
        "configuredModels",
        None,
        api_types.ConfiguredModels,
        {"model": {"type": "string"}},
    ),
    ("get", "/engines/_fit"): (
        "modelFit",
        None,
        api_types.FitReport,
        {"model": {"type": "string"}, "context_size": {"type": "integer"}},
    ),
    ("post", "/engines/_bridge"): ("openBridge", None, api_types.ListenerInfo, {}),
    ("get", "/engines/requests"): (
        "recentRequests",
        None,
        list[api_types.ModelRequests],
        {"model": {"type": "string"}, "include_existing": {"type": "boolean"}},
    ),
    ("get", "/engines/history"): ("metricsHistory", None, api_types.History, {}),
    ("get", "/console/session"): ("consoleSession", None, api_types.ConsoleSession, {}),
    ("get", "/version"): ("version", None, api_types.VersionInfo, {}),
}


def operation_id(method: str, path: str) -> str:
    """The id of an operation that DESCRIBED does not name: `post__v1_chat_completions`."""
    return f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path)}".rstrip("_")


def document(routes: list[Any]) -> dict[str, Any]:
    shapes = {shape for (_, request, answer, _) in DESCRIBED.values() for shape in (request, answer) if shape}
    schemas, definitions = TypeAdapter.json_schemas(
        [(shape, "validation", TypeAdapter(shape)) for shape in shapes], ref_template=COMPONENTS
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            method = method.lower()
            described = DESCRIBED.get((method, route.path_format))
            name, request, answer, query = described or (operation_id(method, route.path_format), None, None, {})
            if described is None and method == "post":
                request = OPEN_OBJECT
            operation: dict[str, Any] = {"operationId": name, "parameters": _parameters(route.path_format, query)}
            if request is not None:
                body = request if request is OPEN_OBJECT else schemas[(request, "validation")]
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
            ok: dict[str, Any] = {"description": "OK"}
            if answer is not None:
                ok["content"] = {"application/json": {"schema": schemas[(answer, "validation")]}}
            operation["responses"] = {"200": ok, "default": {"description": 'An error: {"error": ...}'}}
            paths.setdefault(route.path_format, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Docker Model Runner (docker-model)", "version": __version__},
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }


def _parameters(path: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    found = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names]
    return found + [
        {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in query.items()
    ]


async def openapi(request: Request) -> JSONResponse:
    state = request.app.state
    if not hasattr(state, "openapi"):  # built once: the routes do not change while the runner runs
        state.openapi = document(request.app.routes)
    return JSONResponse(state.openapi)


routes = [Route("/openapi.json", openapi, methods=["GET"])]
