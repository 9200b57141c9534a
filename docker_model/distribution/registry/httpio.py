"""What every exchange with a registry shares: timeouts, failures worth a retry, who may see credentials,
and reads bounded by a limit, so that no answer, however long or slow, is taken in whole on trust; and one
GET of a JSON document with those limits (`get_json`), for the web APIs that are no registry (search).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from docker_model.distribution.errors import AnswerTooLargeError

TIMEOUT = (15.0, 120.0)  # connect, read (seconds): every request to a registry or token service has one
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,  # raised by raw reads of a streamed body
)
# Token answers and error bodies are a few hundred bytes (manifests and configs have their own limits,
# `artifact.MAX_MANIFEST_BYTES` and `MAX_CONFIG_BYTES`).
MAX_JSON_BYTES = 1 << 20


class TransientError(Exception):
    """A failure worth another attempt: a network error or a 5xx/429 answer."""

    def __init__(self, cause: object, status: int | None = None) -> None:
        super().__init__(str(cause))
        self.status = status


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (`host` without a port): this machine, nothing on a network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hostname(address: str) -> str:
    """The host of `host[:port]` (`[v6]:port` too), lower-cased."""
    return (urlsplit(f"//{address}").hostname or address).lower()


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port): two URLs with the same origin reach the same server."""
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or ""), parts.port or (443 if parts.scheme == "https" else 80)


def may_carry_credentials(url: str) -> bool:
    """Credentials and tokens travel over HTTPS, or over plain HTTP to this machine only."""
    scheme, host, _ = origin(url)
    return scheme == "https" or (scheme == "http" and is_loopback(host))


def read_limited(response: requests.Response, limit: int, what: str, announced: bool = False) -> bytes:
    """The body of a streamed `response`, refused (AnswerTooLargeError) past `limit` bytes.

    `announced`: the limit is the size the sender announced, not this client's cap. A network error
    while reading is a TransientError.
    """
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise AnswerTooLargeError(what, limit, announced)
    try:
        body: bytes = response.raw.read(limit + 1, decode_content=True)
    except NETWORK_ERRORS as exc:
        raise TransientError(exc) from exc
    if len(body) > limit:
        raise AnswerTooLargeError(what, limit, announced)
    return body


MAX_REDIRECTS = 5  # `get_json` follows this many on the same server


class StatusError(Exception):
    """`get_json` was answered with another status than 200: `HTTP 503 Service Unavailable`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}".rstrip())
        self.status = status


class RedirectError(Exception):
    """`get_json` was redirected to another server, or too many times: not followed."""


class NotJSONError(ValueError):
    """A body that is not JSON; `start` holds its first bytes, to name what came instead."""

    def __init__(self, what: str, body: bytes) -> None:
        super().__init__(f"{what} is not JSON ({body[:40]!r})")
        self.start = body[:40]


def read_json(response: requests.Response, limit: int, what: str) -> Any:
    """The JSON document of a streamed `response`, read with `read_limited`; NotJSONError when it is not one."""
    body = read_limited(response, limit, what)
    try:
        return json.loads(body)
    except ValueError:
        raise NotJSONError(what, body) from None


def redirect_target(response: requests.Response) -> str:
    """Where a redirect of `response` leads, when that is the same server (scheme, host and port)."""
    try:
        location = urljoin(response.url, response.headers["Location"])
        target, here = origin(location), origin(response.url)
    except ValueError:
        raise RedirectError("redirected to an address that is not a URL: not followed") from None
    if target != here:
        scheme, host, port = target
        raise RedirectError(f"redirected to another server ({scheme}://{host}:{port}): not followed")
    return location


def get_json(
    session: requests.Session,
    url: str,
    what: str,
    limit: int,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The JSON document a GET of `url` answers with 200, read up to `limit` bytes (`read_json`).

    Redirects are followed on the same server only (scheme, host and port: never HTTPS to HTTP), MAX_REDIRECTS
    at most, else a RedirectError. Another status than 200 is a StatusError, a network error or a body cut
    short a TransientError.
    """
    sent = {"Accept": "application/json", **(headers or {})}
    for _ in range(MAX_REDIRECTS + 1):
        try:
            with session.get(
                url, params=params, headers=sent, timeout=TIMEOUT, stream=True, allow_redirects=False
            ) as response:
                if not response.is_redirect:
                    if response.status_code != 200:
                        raise StatusError(response.status_code, response.reason or "")
                    return read_json(response, limit, what)
                url, params = redirect_target(response), None  # the redirect's URL carries the query
        except NETWORK_ERRORS as exc:
            raise TransientError(exc) from exc
    raise RedirectError(f"redirected more than {MAX_REDIRECTS} times: not followed")
