"""Any OpenAI-compatible endpoint, as `list --openaiurl URL` reads it: `GET <URL>/models`.

Not the runner's client: no runner is started or needed, and no runner token is sent (the endpoint may be
anyone's). Uses urllib, imported only here, so the other commands do not pay for it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from docker_model import settings

if TYPE_CHECKING:
    from docker_model.api_types import OpenAIModel

TIMEOUT_SECONDS = 30.0
MAX_ANSWER_BYTES = 16 << 20


def endpoint_url(value: str, option: str = "--openaiurl") -> str:
    """`value` as an http(s) URL; a usage error naming `option` when it is not one."""
    try:
        return settings.http_url(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an http(s) URL: use one like http://127.0.0.1:8080/v1", param_hint=option
        ) from None


def endpoint_models(url: str) -> list[OpenAIModel]:
    """The models `GET <url>/models` lists (`{"object": "list", "data": [...]}`); a one-line error when the
    endpoint cannot be reached or answers something else."""
    import urllib.error
    import urllib.request

    where = f"{url}/models"
    request = urllib.request.Request(where, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            body = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise click.ClickException(
            f"{where} answered HTTP {error.code} ({error.reason}): is it an OpenAI API URL (often ending in /v1)?"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise click.ClickException(f"cannot reach the OpenAI-compatible endpoint {url}: {reason}") from None
    try:
        listing: Any = json.loads(body) if len(body) <= MAX_ANSWER_BYTES else None
    except ValueError:
        listing = None
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
        raise click.ClickException(f'{where} did not answer with a list of models ({{"data": [{{"id": ...}}]}})')
    return data
