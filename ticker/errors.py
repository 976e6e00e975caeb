"""Every error ticker raises on purpose derives from :class:`TickerError`::

    TickerError
    ├── ConfigError      a config key is unknown, mistyped or impossible (names the key)
    ├── FeedError        a feed cannot produce ticks
    ├── ProtocolError    a client's message is not valid protocol v1 (carries the wire error code)
    ├── AlpacaError      the Alpaca-compatible stream refuses a message (carries Alpaca's code)
    └── BrokerError      the pub/sub broker cannot be reached or used
"""

from __future__ import annotations


class TickerError(Exception):
    """Root of ticker's own errors."""


class ConfigError(TickerError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        return f"config error: {self.key}: {self.problem}"


class FeedError(TickerError):
    pass


class ProtocolError(TickerError):
    def __init__(self, code: str, message: str, request_id: int | str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class AlpacaError(TickerError):
    """``code`` and ``msg`` as Alpaca's market-data stream documents them, e.g. 402 "auth
    failed"; ``detail`` says what was wrong (for logs: Alpaca's wire message has no room)."""

    def __init__(self, code: int, msg: str, detail: str = "") -> None:
        super().__init__(code, msg)
        self.code = code
        self.msg = msg
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.msg}"


class BrokerError(TickerError):
    pass
