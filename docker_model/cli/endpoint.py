"""Any OpenAI-compatible server, as `list --openaiurl URL` (`GET <URL>/models`) and `run --openaiurl URL`
(`POST <URL>/chat/completions`) reach it, through one client: `endpoint_client`.

Not the runner: no runner is started or probed, and neither the runner's token nor a context's, nor the
runner's certificate, goes to it (the server may be anyone's). Its key, `$OPENAI_API_KEY` as OpenAI's own
clients read it, is sent only where the network cannot read it: over HTTPS, or over plain HTTP to this machine.
"""

from __future__ import annotations

import http.client
import json
import os
from typing import TYPE_CHECKING, Any

import click

from docker_model import settings
from docker_model.cli.client import Reply, RunnerClient, RunnerError
from docker_model.cli.client import tls_context as trusting

if TYPE_CHECKING:
    import ssl

    from docker_model.api_types import OpenAIModel

API_KEY_VARIABLE = "OPENAI_API_KEY"
TIMEOUT_SECONDS = 30.0
MAX_ANSWER_BYTES = 16 << 20
MAX_MESSAGE_CHARS = 300  # of an error page, in a one-line error


class EndpointClient(RunnerClient):
    """The client of an OpenAI-compatible server whose API root is `url`, sending `key` as its bearer token."""

    def __init__(self, url: str, key: str | None) -> None:  # not RunnerClient's: it would look up runner tokens
        self.context = None
        self.aim(url)
        self.token = key
        self.checked = True  # not a runner: never started, never asked `GET /`

    @property
    def is_local(self) -> bool:
        return False  # never a runner this CLI starts, stops or reads the token of

    def tls_context(self) -> ssl.SSLContext:
        return trusting(None, "the system's certificate authorities")  # not the runner's own certificate

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        """One request; a server that cannot be reached, or an error status, becomes a one-line error naming it."""
        where = self.url(path)
        try:
            reply = self.send(method, path, **kwargs)
        except (OSError, http.client.HTTPException) as error:
            raise click.ClickException(f"cannot reach the OpenAI-compatible endpoint {where}: {error}") from None
        if reply.status >= 400:
            refusal = RunnerError.of(reply)
            said = " ".join(refusal.message.split())  # one line, whatever page the server sent
            said = said if len(said) <= MAX_MESSAGE_CHARS else f"{said[:MAX_MESSAGE_CHARS]}..."
            if said == f"the runner answered HTTP {reply.status}":  # RunnerError's words for an empty body
                said = "no message"
            raise RunnerError(f"{where} answered HTTP {reply.status}: {said}", reply.status, refusal.code)
        return reply


def endpoint_url(value: str, option: str = "--openaiurl") -> str:
    """`value` as an http(s) URL; a usage error naming `option` when it is not one."""
    try:
        return settings.http_url(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an http(s) URL: use one like http://127.0.0.1:8080/v1", param_hint=option
        ) from None


def endpoint_client(value: str, option: str = "--openaiurl") -> EndpointClient:
    """The client of the server whose API root `value` is (a usage error when it is not an http(s) URL), with
    $OPENAI_API_KEY as its key, unless the key would cross a network in clear text (then a warning says so)."""
    url = endpoint_url(value, option)
    key = os.environ.get(API_KEY_VARIABLE, "").strip() or None
    if key:
        from docker_model.distribution.registry.httpio import may_carry_credentials

        if not may_carry_credentials(url):
            click.echo(
                f"Warning: {API_KEY_VARIABLE} is not sent to {url}: plain HTTP would show it to the network "
                "on the way; use an https:// URL to send it",
                err=True,
            )
            key = None
    return EndpointClient(url, key)


def endpoint_models(url: str) -> list[OpenAIModel]:
    """The models `GET <url>/models` lists (`{"object": "list", "data": [...]}`); a one-line error when the
    endpoint cannot be reached or answers something else."""
    client = endpoint_client(url)
    where = client.url("/models")
    try:
        with client.request("GET", "/models", timeout=TIMEOUT_SECONDS) as reply:
            body = reply.response.read(MAX_ANSWER_BYTES + 1)
    except RunnerError as error:
        if error.status in (404, 405):
            raise click.ClickException(f"{error.message}: is it an OpenAI API URL (often ending in /v1)?") from None
        raise
    except (OSError, http.client.HTTPException) as error:
        raise click.ClickException(f"cannot read the answer of {where}: {error}") from None
    try:
        listing: Any = json.loads(body) if len(body) <= MAX_ANSWER_BYTES else None
    except ValueError:
        listing = None
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
        raise click.ClickException(f'{where} did not answer with a list of models ({{"data": [{{"id": ...}}]}})')
    return data
