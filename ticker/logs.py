"""Logging set-up shared by the server and the feed process: uvicorn's format, our loggers."""

from __future__ import annotations

from typing import Any

import uvicorn


def log_config(level: str) -> dict[str, Any]:
    config: dict[str, Any] = dict(uvicorn.config.LOGGING_CONFIG)
    config["loggers"] = dict(config["loggers"])
    config["loggers"]["ticker"] = {"handlers": ["default"], "level": level.upper(),
                                   "propagate": False}
    return config
