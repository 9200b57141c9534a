"""Answers to a registry's 401 challenges: Bearer tokens (anonymous or with credentials) and Basic.

Tokens are cached per scope, since a pull token does not allow a push. A token given by the caller (the
`bearer-token` of `POST /models/create`) is sent as it is: a 401 then means the registry refused it.
The token exchange is done here,
not by a library, so that it has a timeout, reads a bounded answer, and sends the `docker login`
credentials only where they may go (`httpio.may_carry_credentials`).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from urllib.parse import urlsplit

import requests

from docker_model.distribution.errors import AuthenticationError, RegistryError
from docker_model.distribution.registry.credentials import Credentials
from docker_model.distribution.registry.httpio import (
    MAX_JSON_BYTES,
    NETWORK_ERRORS,
    RETRY_STATUS,
    TIMEOUT,
    TransientError,
    may_carry_credentials,
    read_limited,
)

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryAuth:
    def __init__(
        self,
        session: requests.Session,
        registry: str,
        credentials: Credentials | None,
        timeout: tuple[float, float] = TIMEOUT,
        bearer_token: str | None = None,
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self.bearer_token = bearer_token
        self._session = session
        self._timeout = timeout
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()

    def header(self, scope: str) -> dict[str, str]:
        """The Authorization header already known good for `scope` (empty before any challenge)."""
        token = self.bearer_token or self._tokens.get(scope)
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self.credentials is not None:
            return {"Authorization": f"Basic {_basic_pair(self.credentials)}"}
        return {}

    def answer(self, response: requests.Response, scope: str) -> dict[str, str]:
        """Obtain what the 401 `response` asks for; raise AuthenticationError when it cannot be had."""
        scheme, _, params = response.headers.get("WWW-Authenticate", "").partition(" ")
        if self.bearer_token is not None:
            fix = "the bearer token sent with the pull was refused: send one that grants pull access to the model"
            raise AuthenticationError(self.registry, rejected=True, fix=fix)
        with self._lock:
            if scheme.lower() == "basic":
                if self.credentials is None:
                    raise AuthenticationError(self.registry, rejected=False)
                self._basic = True
                return self.header(scope)
            if scheme.lower() == "bearer":
                self._tokens[scope] = self._token(dict(_CHALLENGE_PARAM.findall(params)), scope)
                return self.header(scope)
        raise AuthenticationError(self.registry, rejected=False)

    def _token(self, challenge: dict[str, str], scope: str) -> str:
        """A token from the challenge's realm: with the credentials when there are some, else anonymous."""
        realm = challenge.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(self.registry, 401, f"unusable token realm {realm!r}")
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            if not may_carry_credentials(realm):
                raise AuthenticationError(
                    self.registry,
                    rejected=False,
                    fix=f"its token service {realm} is plain HTTP, which carries credentials only to localhost; "
                    "serve it over HTTPS",
                )
            headers["Authorization"] = f"Basic {_basic_pair(self.credentials)}"
        params = {"scope": challenge.get("scope") or scope}
        if "service" in challenge:
            params["service"] = challenge["service"]
        what = f"the token answer from {urlsplit(realm).netloc}"
        try:
            with self._session.get(
                realm, params=params, headers=headers, timeout=self._timeout, stream=True
            ) as response:
                if response.status_code in RETRY_STATUS:
                    raise TransientError(f"token service answered {response.status_code}", response.status_code)
                if response.status_code in (401, 403):
                    raise AuthenticationError(self.registry, rejected=self.credentials is not None)
                if response.status_code != 200:
                    raise RegistryError(self.registry, response.status_code, "the token service refused")
                body = read_limited(response, MAX_JSON_BYTES, what)
        except NETWORK_ERRORS as exc:
            raise TransientError(exc) from exc
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(self.registry, 200, "the token service sent no token")
        return token


def _basic_pair(credentials: Credentials) -> str:
    return base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
