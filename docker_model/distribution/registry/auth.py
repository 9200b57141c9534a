"""Answers to a registry's 401 challenges: Bearer tokens (anonymous or with credentials) and Basic.

The token exchange itself is oras-py's; tokens are cached per scope, since a pull token does not
allow a push.
"""

from __future__ import annotations

import base64
import threading

import oras.auth
import requests
from oras.auth.utils import parse_auth_header

from docker_model.distribution.errors import AuthenticationError
from docker_model.distribution.registry.credentials import Credentials


class RegistryAuth:
    def __init__(
        self, session: requests.Session, registry: str, credentials: Credentials | None, insecure: bool
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self._oras = oras.auth.get_auth_backend("token", session=session, insecure=insecure)
        if credentials is not None:
            self._oras.set_basic_auth(credentials.username, credentials.password)
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()

    def header(self, scope: str) -> dict[str, str]:
        """The Authorization header already known good for `scope` (empty before any challenge)."""
        token = self._tokens.get(scope)
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self.credentials is not None:
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        return {}

    def answer(self, response: requests.Response, scope: str) -> dict[str, str]:
        """Obtain what the 401 `response` asks for; raise AuthenticationError when it cannot be had."""
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        with self._lock:
            if scheme == "basic":
                if self.credentials is None:
                    raise AuthenticationError(self.registry, rejected=False)
                self._basic = True
                return self.header(scope)
            if scheme == "bearer":
                parsed = parse_auth_header(challenge)
                parsed.scope = parsed.scope or scope
                if self.credentials is None:
                    token = self._oras.request_anonymous_token(parsed)
                else:
                    token = self._oras.request_token(parsed)
                if not token:
                    raise AuthenticationError(self.registry, rejected=self.credentials is not None)
                self._tokens[scope] = token
                return self.header(scope)
        raise AuthenticationError(self.registry, rejected=False)
