# Open N WebSocket connections (handshake only) to host:port and hold them; print the server's
# RSS before and after (server pid given).
import asyncio, base64, os, sys, resource, time
N, port, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1])
async def one(i, held):
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{2 + i // 25000}", 0))
    key = base64.b64encode(os.urandom(16))
    w.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    held.append((r, w))
async def main():
    held = []
    before = rss(pid)
    gate = asyncio.Semaphore(200)
    async def gated(i):
        async with gate: await one(i, held)
    await asyncio.gather(*(gated(i) for i in range(N)))
    await asyncio.sleep(3)
    after = rss(pid)
    print(f"{len(held)} held; server RSS {before} -> {after} KB: {(after - before) / len(held):.2f} KB per connection")
asyncio.run(main())
