"""The web console at `/console/`: its page and assets, served from `static/` (the app built from `web/`), and
`GET /console/session`, a fresh secret for the console to send back on every state-changing request.

Every `/console` answer, errors included, carries CONSOLE_HEADERS (`ConsoleHeaders`): the app's own scripts,
styles and connections only, no inline code, no framing, no MIME sniffing, no referrer. The page and its
assets hold no data, so they need no token (`api/access.py`); the data routes keep their rules.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from docker_model.api_types import ConsoleSession
from docker_model.runner.api.access import console_secret, is_own_origin, with_headers
from docker_model.runner.api.common import state_of
from docker_model.runner.console import ASSETS, PREFIX, is_console
from docker_model.runner.shared.error_body import APIError

STATIC_DIR = Path(__file__).parent / "static"
INDEX = "index.html"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
CONSOLE_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
CONTENT_TYPES = {  # what the build writes (web/build.mjs); nosniff: a module script needs a JavaScript type
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
log = logging.getLogger(__name__)
BUILD_HINT = (
    "reinstall docker-model, or build the console (`npm ci && npm run build` in docker_model/runner/console/web)"
)


class ConsoleHeaders:
    """ASGI middleware: CONSOLE_HEADERS on every answer under `/console`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_console(scope["path"]):
            send = with_headers(send, CONSOLE_HEADERS)
        await self.app(scope, receive, send)


def same_origin(request: Request) -> bool:
    """Whether a request comes from the runner's own pages, or from no browser at all. A browser says where
    a request comes from in `Sec-Fetch-Site` (a page on another port of localhost is `same-site`, not
    `same-origin`) or, older ones, in `Origin`."""
    headers: Headers = request.headers
    site, origin = headers.get("sec-fetch-site"), headers.get("origin")
    if site is not None:
        return site == "same-origin"
    return origin is None or is_own_origin(origin, request.url.scheme, headers.get("host"))


async def session(request: Request) -> JSONResponse:
    if not same_origin(request):
        why = "the console's session is given to the console's own page only: open it at /console/ on the runner"
        raise APIError(403, why)
    answer: ConsoleSession = {"secret": console_secret(state_of(request).console_key)}
    return JSONResponse(answer, headers={"cache-control": "no-store"})


def file_in(root: Path, relative: str) -> Path | None:
    """The file `relative` names inside `root`; None where there is none, or it would lie outside."""
    try:
        path = (root / relative).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None
    except (OSError, ValueError):  # a name no file can have (a NUL byte, too long)
        return None


def console_routes(static_dir: Path = STATIC_DIR) -> list[Route]:
    """The console's routes, serving the app in `static_dir`."""
    root = static_dir.resolve()

    def file_response(relative: str) -> FileResponse:
        path = file_in(root, relative)
        if path is None:
            if relative == INDEX:
                log.error("the console's %s is missing: %s", root / INDEX, BUILD_HINT)
                raise APIError(404, f"the console is not installed here ({INDEX} is missing): {BUILD_HINT}")
            raise APIError(404, f"the console has no file {relative!r}: reload the page at {PREFIX}/")
        media_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media_type, headers={"cache-control": "no-cache"})

    async def redirect(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    async def index(request: Request) -> FileResponse:
        return file_response(INDEX)

    async def asset(request: Request) -> FileResponse:
        return file_response(request.path_params["file"])

    return [
        Route(PREFIX, redirect, methods=["GET"]),
        Route(f"{PREFIX}/", index, methods=["GET"]),
        Route(f"{PREFIX}/session", session, methods=["GET"]),
        Route(f"{ASSETS}{{file:path}}", asset, methods=["GET"]),
    ]
