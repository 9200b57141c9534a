"""Who may call the runner: the Host header on loopback, browser origins (CORS), and the runner's token.

Checked in this order on every request, before any route runs:
1. On a loopback address, a `Host` that is not a name of this machine is refused (403): a web page whose
   domain an attacker re-points at 127.0.0.1 (DNS rebinding) sends its own name there.
2. A browser's `Origin` must be the runner's own (`{scheme}://{Host}`: same-origin, no CORS needed) or
   allowed: localhost by default, more in `DMR_ORIGINS` (`*` for any). Allowed origins get CORS headers,
   and their preflights (`OPTIONS`) a 204; others a 403.
3. A browser's state-changing request (POST, PUT, PATCH, DELETE) to a route that is not an inference route
   (one with an `Origin`, the runner's own included, or with a `Sec-Fetch-Site` other than `same-origin` or
   `none`) must carry a console secret in `X-Docker-Model-Secret` (`GET /console/session` gives the runner's
   own pages a fresh one each time: `nonce.hmac(key, nonce)`, checked against the runner's key, nothing
   stored), unless its origin is listed by name in `DMR_ORIGINS`: a page on another port of localhost is
   foreign, and may not remove models by a form post or a fetch. Without it: 403.
4. The listener's token scope (`runner/listeners.py`): `all` needs `Authorization: Bearer TOKEN` (or
   Anthropic's `x-api-key: TOKEN`) everywhere, `management` everywhere but the inference routes, `none`
   nowhere. `GET /`, the health check, and the console's page and assets (no data) never need it.
   Without it: 401.
CORS headers are added to the runner's own responses here, and handed to a model's worker for the
responses it writes itself (`RESPONSE_HEADERS`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import socket
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docker_model import settings
from docker_model.runner.api.middleware import send_error
from docker_model.runner.console import is_public
from docker_model.runner.listeners import Listener, Listeners
from docker_model.runner.shared.wire import RESPONSE_HEADERS

HEALTH_PATH = "/"
LOCAL_SUFFIXES = (".localhost", ".local", ".internal")  # `host.docker.internal` included
INFERENCE_ROUTES = re.compile(
    r"(/engines(/llama\.cpp)?|/anthropic)?/v1/"
    r"(chat/completions|completions|embeddings|messages|messages/count_tokens|responses|responses/[^/]+"
    r"|models|models/.+)"
    r"|/api/(chat|generate|embed|embeddings|tags|show|ps|version)"
)
ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
SECRET_HEADER = "X-Docker-Model-Secret"
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
NOT_CROSS_SITE = ("same-origin", "none")  # `Sec-Fetch-Site` values of a page's own request or a person's
PREFLIGHT_MAX_AGE = "600"


def is_inference(path: str) -> bool:
    """Whether `path` serves models to applications (open on a bridge), rather than managing the runner."""
    return INFERENCE_ROUTES.fullmatch(path) is not None


def is_own_origin(origin: str, scheme: str, host: str | None) -> bool:
    """Whether a browser's `Origin` is the runner's own: its scheme (`https` over TLS) and the `Host` called,
    that host a name of this machine (a page whose domain an attacker re-points at one of the runner's
    addresses has that domain as its origin and host: it stays foreign)."""
    if host is None or not names_this_machine(host):
        return False
    return origin.rstrip("/").lower() == f"{scheme}://{host}".lower()


def console_secret(key: bytes) -> str:
    """A fresh secret for one console session: a random nonce and the runner's `key`'s MAC of it."""
    nonce = secrets.token_hex(16)
    return f"{nonce}.{mac_of(key, nonce)}"


def valid_secret(key: bytes | None, given: str) -> bool:
    """Whether `given` is a secret `console_secret` made with `key` (no secret is valid without a key)."""
    nonce, dot, mac = given.partition(".")
    if key is None or not dot:
        return False
    return hmac.compare_digest(mac.encode("latin-1", "replace"), mac_of(key, nonce).encode())


def mac_of(key: bytes, nonce: str) -> str:
    return hmac.new(key, nonce.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def needs_token(listener: Listener, method: str, path: str) -> bool:
    if (path == HEALTH_PATH and method in ("GET", "HEAD")) or is_public(method, path):
        return False
    if listener.token_scope == "none":
        return False
    return listener.token_scope == "all" or not is_inference(path)


def names_this_machine(host: str) -> bool:
    """Whether a `Host` header's name is this machine's: an address, `localhost`, a local suffix, or its
    host name. (An attacker's page cannot make a browser send an address it does not serve.)"""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:  # not a host name at all (`[bad`)
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name == "localhost" or name.endswith(LOCAL_SUFFIXES) or name == socket.gethostname().lower()


class Origins:
    """The browser origins allowed to call the runner: localhost's, and those `DMR_ORIGINS` lists."""

    def __init__(self, listed: str | None = None) -> None:
        value = os.environ.get("DMR_ORIGINS", "") if listed is None else listed
        self.listed = {origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()}

    def listed_by_name(self, origin: str) -> bool:
        return origin.rstrip("/") in self.listed

    def allow(self, origin: str) -> bool:
        if "*" in self.listed or origin.rstrip("/") in self.listed:
            return True
        try:
            return urlsplit(origin).hostname in settings.LOCAL_HOSTS
        except ValueError:  # not a URL (`http://[bad`)
            return False


class AccessGuard:
    """The four checks above, as ASGI middleware in front of every route. `console_key`: the key the console's
    secrets are signed with (None: no browser's state-changing request passes check 3 but from an origin
    listed by name)."""

    def __init__(
        self,
        app: ASGIApp,
        listeners: Listeners,
        token: str,
        origins: Origins | None = None,
        console_key: bytes | None = None,
    ) -> None:
        self.app = app
        self.listeners = listeners
        self.token = token.encode()
        self.origins = origins or Origins()
        self.console_key = console_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path, method = scope["path"], scope["method"]
        server = scope.get("server")
        listener = self.listeners.serving(server[0] if server else None)
        host = headers.get("host")
        if listener.kind == "loopback" and host and not names_this_machine(host):
            why = f"Host {host!r} is not a name of this machine; call the runner as localhost or 127.0.0.1"
            await send_error(send, 403, why, path)
            return
        origin = headers.get("origin") or None
        if origin is not None and not is_own_origin(origin, scope.get("scheme", "http"), host):
            if not self.origins.allow(origin):
                await send_error(send, 403, f"origin {origin} is not allowed; add it to DMR_ORIGINS to allow it", path)
                return
            cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
            if method == "OPTIONS" and "access-control-request-method" in headers:
                await self.preflight(send, headers, cors)
                return
            scope[RESPONSE_HEADERS] = cors
            send = with_headers(send, cors)
        if not self.may_change_state(method, path, origin, headers):
            why = (
                f"a browser's {method} to {path} needs the console's secret in the {SECRET_HEADER} header "
                f"(the console at /console/ sends it), or its origin ({origin or 'none sent'}) listed in DMR_ORIGINS"
            )
            await send_error(send, 403, why, path)
            return
        if needs_token(listener, method, path) and not self.authorized(headers):
            why = (
                f"this route of the runner at {listener.url} needs its token: send `Authorization: Bearer TOKEN` "
                "(an OpenAI client's api_key); `docker model status` on the runner's machine shows it"
            )
            await send_error(send, 401, why, path, [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)

    def authorized(self, headers: Headers) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "")
        return hmac.compare_digest(given.encode("latin-1", "replace"), self.token)

    def may_change_state(self, method: str, path: str, origin: str | None, headers: Headers) -> bool:
        """Check 3: a browser's request (an `Origin`, or a cross-page `Sec-Fetch-Site` without one)."""
        site = headers.get("sec-fetch-site")
        from_a_page = origin is not None or (site is not None and site not in NOT_CROSS_SITE)
        if not from_a_page or method not in STATE_CHANGING or is_inference(path):
            return True
        if origin is not None and self.origins.listed_by_name(origin):
            return True
        return valid_secret(self.console_key, headers.get(SECRET_HEADER, ""))

    async def preflight(self, send: Send, headers: Headers, cors: list[tuple[bytes, bytes]]) -> None:
        """204 to an allowed origin's preflight, allowing the headers it asks for."""
        answer = [
            *cors,
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
        ]
        if asked := headers.get("access-control-request-headers"):
            answer.append((b"access-control-allow-headers", asked.encode("latin-1")))
        if headers.get("access-control-request-private-network") == "true":  # Chrome's Private Network Access
            answer.append((b"access-control-allow-private-network", b"true"))
        await send({"type": "http.response.start", "status": 204, "headers": answer})
        await send({"type": "http.response.body", "body": b""})


def with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """`send`, adding `extra` to the response's headers."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending
