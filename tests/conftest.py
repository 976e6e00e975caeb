from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", autouse=True)
def collect_garbage_after_each_module() -> Iterator[None]:
    """A socket or transport a test module leaves open is reported (ResourceWarning, an error
    here) at the end of that module, not in whichever later test the garbage collector happens
    to run (once per module: after every test would cost the suite a minute)."""
    yield
    gc.collect()
