"""HTTP to one registry: which scheme, who sees credentials, authentication, retries, error mapping."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from docker_model.distribution.cancel import CancelToken
from docker_model.distribution.errors import (
    AnswerTooLargeError,
    AuthenticationError,
    PullCancelledError,
    RegistryError,
    RegistryUnreachableError,
)
from docker_model.distribution.registry.auth import RegistryAuth
from docker_model.distribution.registry.credentials import Credentials
from docker_model.distribution.registry.httpio import (
    MAX_JSON_BYTES,
    NETWORK_ERRORS,
    RETRY_STATUS,
    TIMEOUT,
    TransientError,
    hostname,
    is_loopback,
    may_carry_credentials,
    origin,
    read_limited,
)

T = TypeVar("T")
DOCKER_HUB_API = "registry-1.docker.io"


def new_session(pool_size: int = 8) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "docker-model"
    return session


def is_insecure(registry: str, insecure_registries: frozenset[str]) -> bool:
    """Plain HTTP allowed: loopback, `*.local` and registries configured as insecure."""
    host = hostname(registry)
    return is_loopback(host) or host.endswith(".local") or registry in insecure_registries


def registry_error(registry: str, response: requests.Response) -> RegistryError:
    """The registry's own error message (OCI `errors[0].message`) when it gives one in a bounded body."""
    try:
        body = read_limited(response, MAX_JSON_BYTES, "an error body")
        detail = json.loads(body)["errors"][0]["message"]
    except (AnswerTooLargeError, TransientError, ValueError, KeyError, IndexError, TypeError):
        detail = None
    return RegistryError(registry, response.status_code, str(detail or response.reason or "unexpected answer"))


class Transport:
    """One registry. Credentials go only to its own origin, and over plain HTTP only to loopback: never
    to a foreign upload `Location` (requests drops them on a redirect to another host itself).

    `insecure`: plain HTTP is allowed. A loopback registry is then reached over HTTP straight away; any
    other (`*.local`, configured insecure) is asked over HTTPS first, and over HTTP only if it speaks
    no TLS that can be trusted.
    """

    def __init__(
        self,
        registry: str,
        session: requests.Session,
        credentials: Credentials | None,
        insecure: bool,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: tuple[float, float] = TIMEOUT,
        bearer_token: str | None = None,
    ) -> None:
        self.registry = registry
        self._host = DOCKER_HUB_API if registry == "docker.io" else registry
        self._base: str | None = f"https://{self._host}/v2/"
        if insecure:
            self._base = f"http://{self._host}/v2/" if is_loopback(hostname(self._host)) else None
        self._base_lock = threading.Lock()
        self.session = session
        self.auth = RegistryAuth(session, registry, credentials, timeout, bearer_token)
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout

    @property
    def base(self) -> str:
        """The API root, `https://host/v2/` unless plain HTTP is allowed and HTTPS is not served."""
        with self._base_lock:
            if self._base is not None:
                return self._base
            https, http = f"https://{self._host}/v2/", f"http://{self._host}/v2/"
            try:
                self.session.get(https, timeout=self.timeout).close()
            except requests.exceptions.SSLError:
                self._base = http  # it answers, but without (trusted) TLS: HTTP from now on
                return http
            except NETWORK_ERRORS:
                return http  # not answering now: HTTP this time, HTTPS asked again next time
            self._base = https
            return https

    def url(self, path: str) -> str:
        return urljoin(self.base, path)

    def _refusal(self, url: str) -> str | None:
        """Why no credentials may be sent to `url` (what the user can do about it), or None."""
        if origin(url) != origin(self.base):
            return f"{urlsplit(url).netloc}, where it sent this request, asked for credentials, which go to it alone"
        if not may_carry_credentials(url):
            return "it is plain HTTP, which carries credentials only to localhost; serve the registry over HTTPS"
        return None

    def request(
        self,
        method: str,
        url: str,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
    ) -> requests.Response:
        """One exchange, answering a 401 challenge once. 5xx/429 and network errors raise TransientError.

        The answer is streamed: read it with `read_limited` or from `raw`, and close it. `body` makes the
        request body, called again when the request must be resent.
        """
        for answered in (False, True):
            refusal = self._refusal(url)
            sent = {**(self.auth.header(scope) if refusal is None else {}), **(headers or {})}
            try:
                response = self.session.request(
                    method, url, headers=sent, data=body() if body else None, stream=True, timeout=self.timeout
                )
            except NETWORK_ERRORS as exc:
                raise TransientError(exc) from exc
            if response.status_code == 401 and not answered:
                response.close()
                if refusal is not None:
                    raise AuthenticationError(self.registry, rejected=False, fix=refusal)
                self.auth.answer(response, scope)
                continue
            if response.status_code == 401:
                response.close()
                rejected = self.auth.credentials is not None or self.auth.bearer_token is not None
                raise AuthenticationError(self.registry, rejected=rejected)
            if response.status_code in RETRY_STATUS:
                response.close()
                raise TransientError(f"HTTP {response.status_code}", response.status_code)
            if method == "HEAD" or response.headers.get("Content-Length") == "0":
                response.raw.read()  # nothing to read: done now, the connection goes back to the pool
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
