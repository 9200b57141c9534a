"""What every exchange with a registry shares: timeouts, failures worth a retry, who may see credentials,
and reads bounded by a limit, so that no answer, however long or slow, is taken in whole on trust.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

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
