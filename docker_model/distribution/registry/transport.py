"""HTTP to one registry: base URL, authentication, retries with backoff, and error mapping."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter

from docker_model.distribution.cancel import CancelToken
from docker_model.distribution.errors import (
    AuthenticationError,
    PullCancelledError,
    RegistryError,
    RegistryUnreachableError,
)
from docker_model.distribution.registry.auth import RegistryAuth
from docker_model.distribution.registry.credentials import Credentials

T = TypeVar("T")
DOCKER_HUB_API = "registry-1.docker.io"
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,  # raised by raw reads of a streamed body
)
TIMEOUT = (15, 120)  # connect, read (seconds)


class TransientError(Exception):
    """A failure worth another attempt: a network error or a 5xx/429 answer."""

    def __init__(self, cause: object, status: int | None = None) -> None:
        super().__init__(str(cause))
        self.status = status


def new_session(pool_size: int = 8) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "docker-model"
    return session


def is_insecure(registry: str, insecure_registries: frozenset[str]) -> bool:
    """Plain HTTP for loopback, `*.local` and registries configured as insecure."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return host in ("localhost", "127.0.0.1") or host.endswith(".local") or registry in insecure_registries


def registry_error(registry: str, response: requests.Response) -> RegistryError:
    """The registry's own error message (OCI `errors[0].message`) when it gives one."""
    try:
        detail = response.json()["errors"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        detail = response.reason or "unexpected answer"
    return RegistryError(registry, response.status_code, detail)


class Transport:
    def __init__(
        self,
        registry: str,
        session: requests.Session,
        credentials: Credentials | None,
        insecure: bool,
        attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self.registry = registry
        host = DOCKER_HUB_API if registry == "docker.io" else registry
        self.base = f"{'http' if insecure else 'https'}://{host}/v2/"
        self.session = session
        self.auth = RegistryAuth(session, registry, credentials, insecure)
        self.attempts = attempts
        self.backoff = backoff

    def url(self, path: str) -> str:
        return urljoin(self.base, path)

    def request(
        self,
        method: str,
        url: str,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One exchange, answering a 401 challenge once. 5xx/429 and network errors raise TransientError.

        `body` makes the request body, called again when the request must be resent.
        """
        for answered in (False, True):
            sent = {**self.auth.header(scope), **(headers or {})}
            try:
                response = self.session.request(
                    method, url, headers=sent, data=body() if body else None, stream=stream, timeout=TIMEOUT
                )
            except NETWORK_ERRORS as exc:
                raise TransientError(exc) from exc
            if response.status_code == 401 and not answered:
                response.close()
                self.auth.answer(response, scope)
                continue
            if response.status_code == 401:
                response.close()
                raise AuthenticationError(self.registry, rejected=self.auth.credentials is not None)
            if response.status_code in RETRY_STATUS:
                response.close()
                raise TransientError(f"HTTP {response.status_code}", response.status_code)
            return response
        raise AssertionError("unreachable")

    def retrying(self, action: Callable[[], T], cancel: CancelToken | None = None) -> T:
        return retrying(action, self.registry, self.attempts, self.backoff, cancel)


def retrying(
    action: Callable[[], T], where: str, attempts: int, backoff: float, cancel: CancelToken | None = None
) -> T:
    """Run `action`, again after a doubling pause while it raises TransientError (`attempts` in all)."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except TransientError as exc:
            if attempt == attempts:
                if exc.status is not None:
                    raise RegistryError(where, exc.status, f"server error, {attempt} attempts") from exc
                raise RegistryUnreachableError(where, plain_cause(exc)) from exc
            pause = backoff * 2 ** (attempt - 1)
            if cancel is None:
                time.sleep(pause)
            elif cancel.wait(pause):
                raise PullCancelledError() from exc
    raise AssertionError("unreachable")


# What the network libraries' nested messages mean, in a few words a user can act on.
_CAUSES = (
    ("Name or service not known|Failed to resolve|nodename nor servname|getaddrinfo failed", "host name not found"),
    ("Connection refused", "connection refused"),
    ("timed out|Timeout", "timed out"),
    ("CERTIFICATE_VERIFY_FAILED|certificate verify failed", "its TLS certificate is not trusted"),
    ("SSLError|SSL:", "TLS handshake failed"),
    ("Connection reset|RemoteDisconnected|Connection aborted", "connection closed by the server"),
    ("Network is unreachable|No route to host", "network unreachable"),
)


def plain_cause(error: BaseException) -> str:
    """The cause of a network error without urllib3's internals (pools, retries, object reprs)."""
    text = str(error)
    for pattern, words in _CAUSES:
        if re.search(pattern, text):
            return words
    return text.splitlines()[0][:120] if text else type(error).__name__
