"""The connection cap meets the process's open-files limit: past it a client gets the 503 that
says "full", not an accept() that fails with EMFILE and leaves it waiting."""

from __future__ import annotations

import asyncio
import resource
import sys
from pathlib import Path

import pytest

from tests.processes import READY, Process, require_tool
from ticker.limits import RESERVED_FILES, connections_that_fit


def test_the_soft_limit_rises_to_what_the_cap_needs_within_the_hard_limit() -> None:
    assert connections_that_fit(1000, 256, 4096) == (1000 + RESERVED_FILES, 1000)
    assert connections_that_fit(10_000, 1024, 2048) == (2048, 2048 - RESERVED_FILES)
    assert connections_that_fit(100, 50_000, 60_000) == (50_000, 100)  # never lowered
    infinite = resource.RLIM_INFINITY
    assert connections_that_fit(10_000, 1024, infinite) == (10_000 + RESERVED_FILES, 10_000)


async def handshake_status(port: int, held: list[asyncio.StreamWriter]) -> str:
    """The status of a WebSocket handshake's answer; the connection is kept in ``held``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    held.append(writer)
    writer.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    return status.decode().split(" ")[1] if status else "no answer"


@pytest.mark.e2e
@pytest.mark.anyio
async def test_a_server_under_a_low_open_files_limit_caps_itself_and_says_so(
        tmp_path: Path) -> None:
    prlimit = require_tool("prlimit")
    limit = RESERVED_FILES + 40
    server = Process([prlimit, f"--nofile={limit}:{limit}", sys.executable, "-m", "ticker",
                      "serve", "--port", "0", "--tick-rate", "20"], tmp_path,
                     env={"TICKER_SERVER_MAX_CONNECTIONS": "1000"})
    held: list[asyncio.StreamWriter] = []
    try:
        port = int(server.wait_for(READY).group(1))
        assert "may open only" in server.output and "holds 40 connections" in server.output
        statuses = [await handshake_status(port, held) for _ in range(45)]
        assert statuses[:40] == ["101"] * 40, statuses
        assert statuses[40:] == ["503"] * 5, statuses  # refused with a reason, none hanging
    finally:
        for writer in held:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for writer in held),
                             return_exceptions=True)
        server.stop()
