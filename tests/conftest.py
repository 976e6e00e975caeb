from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test() -> Iterator[None]:
    """A socket or transport a test leaves open is reported (ResourceWarning, an error here)
    by that test, not by whichever later test the garbage collector happens to run in."""
    yield
    gc.collect()
