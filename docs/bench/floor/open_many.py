"""Open N WebSocket connections (the handshake only) to 127.0.0.1:PORT, hold them, and print
the server's RSS per connection (the server's pid given): python open_many.py N PORT PID."""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import sys

SOURCES_EVERY = 25_000  # connections per source address (127.0.0.2, .3, ...): ports run out


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def open_one(index: int, port: int,
                   held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    source = f"127.0.0.{2 + index // SOURCES_EVERY}"
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    key = base64.b64encode(os.urandom(16))
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"refused: {head[:60]!r}")
    held.append((reader, writer))


async def main(count: int, port: int, pid: int) -> None:
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    before = rss_kb(pid)
    gate = asyncio.Semaphore(200)

    async def gated(index: int) -> None:
        async with gate:
            await open_one(index, port, held)

    await asyncio.gather(*(gated(index) for index in range(count)))
    await asyncio.sleep(3)
    after = rss_kb(pid)
    print(f"{len(held)} held; server RSS {before} -> {after} KB: "
          f"{(after - before) / len(held):.2f} KB per connection")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (20_000, 20_000))
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
