"""Where the files that ship with ticker live: in the wheel they sit inside the package
(see pyproject's force-include), in a source checkout at the repository root."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name} is missing from the ticker installation ({_PACKAGE})")


def default_config_path() -> Path:
    return _locate("config.toml")


def web_dir() -> Path:
    return _locate("web")
