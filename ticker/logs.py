"""Logging set-up shared by the server and the feed process: uvicorn's format (or one JSON object
per line), our loggers, and no access token in any line."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import uvicorn

from ticker.transport.denial import DENIAL_SENT, UVICORN_INCOMPLETE_HANDSHAKE

_SECRETS = re.compile(r"(?i)(\btoken=|\bbearer\s+)[^\s&\"']+")
REDACTED = r"\1[redacted]"


def redact(text: str) -> str:
    return _SECRETS.sub(REDACTED, text)


class RedactTokens(logging.Filter):
    """Rewrites the message and its arguments in place, so formatters that read ``args``
    (uvicorn's access lines take the request path from them) still find what they expect."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v
                           for k, v in record.args.items()}
        return True


class DropDenialNoise(logging.Filter):
    """See ticker/transport/denial.py: uvicorn's false ERROR after a refused handshake."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (DENIAL_SENT.get() and record.msg == UVICORN_INCOMPLETE_HANDSHAKE)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message[, exception]."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()



def log_config(level: str, fmt: str = "text") -> dict[str, Any]:
    config: dict[str, Any] = dict(uvicorn.config.LOGGING_CONFIG)
    config["loggers"] = dict(config["loggers"])
    config["loggers"]["ticker"] = {"handlers": ["default"], "level": level.upper(),
                                   "propagate": False}
    config["filters"] = {"redact": {"()": RedactTokens}, "denials": {"()": DropDenialNoise}}
    config["handlers"] = {name: {**handler, "filters": ["redact", "denials"]}
                          for name, handler in config["handlers"].items()}
    if fmt == "json":
        config["formatters"] = {"json": {"()": JsonFormatter}}
        config["handlers"] = {name: {**handler, "formatter": "json"}
                              for name, handler in config["handlers"].items()}
    return config
