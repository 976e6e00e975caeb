"""Which browser pages may open a WebSocket here (cross-site WebSocket hijacking protection).

uvicorn accepts any Origin, and a WebSocket is not covered by the same-origin policy: without this
check, any web page a user visits could open a socket to a ticker on their machine or network.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class OriginPolicy:
    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = frozenset(origin.rstrip("/").lower() for origin in allowed)

    def allows(self, origin: str | None, host: str | None) -> bool:
        """No Origin (a program, not a browser) is allowed; a browser page must come from this
        server itself, from localhost, or from a configured origin."""
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self._allowed or "*" in self._allowed:
            return True
        parts = urlsplit(origin)
        if parts.hostname is None:
            return False
        if parts.hostname in LOCAL_HOSTS:
            return True
        return host is not None and parts.netloc == host.lower()
