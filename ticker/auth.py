"""Optional token auth (``auth.tokens``): who may open a stream or read the API.

Checked once, at the start of a request or WebSocket handshake, before any route or hub state:
a client without a valid token gets 401 and nothing else. A token travels as ``?token=...`` (what
a browser's WebSocket and EventSource can send) or ``Authorization: Bearer ...``; log lines never
show it (ticker/logs.py).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from starlette.types import Scope

# Streams and data need a token. The page itself (static files), the health endpoints and
# /metrics stay open: they hold no market data, and probes rarely carry credentials.
PROTECTED_PATHS = frozenset({"/ws", "/ws/replay", "/sse", "/poll"})
PROTECTED_PREFIXES = ("/api/",)


class TokenPolicy:
    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._tokens = tuple(token.encode() for token in tokens)

    @property
    def required(self) -> bool:
        return bool(self._tokens)

    def protects(self, path: str) -> bool:
        return path in PROTECTED_PATHS or path.startswith(PROTECTED_PREFIXES)

    def allows(self, token: str | None) -> bool:
        if token is None:
            return False
        given = token.encode()
        # Compare with every token, in constant time, so timing tells nothing about any of them.
        matches = [hmac.compare_digest(given, known) for known in self._tokens]
        return any(matches)

    def admits(self, scope: Scope) -> bool:
        return not self.required or not self.protects(scope["path"]) \
            or self.allows(token_from(scope))


def token_from(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return str(credentials.strip())
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query):
        if name == "token":
            return str(value)
    return None
