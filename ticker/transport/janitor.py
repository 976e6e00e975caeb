"""Once a second, one task looks at every connection: cheaper than a timer per send or per socket.

It drops a client whose current send has not completed within ``send_timeout`` (it stopped
reading and its socket buffers are full: a close frame would not get through either), and closes
a WebSocket that has subscribed to nothing ``idle_timeout`` after it opened (4001).
"""

from __future__ import annotations

import asyncio
import logging

from ticker.hub import Hub
from ticker.protocol import CLOSE_IDLE
from ticker.stats import Stats
from ticker.subscriber import Close

log = logging.getLogger("ticker.ws")


async def tend_connections(hub: Hub, send_timeout: float, idle_timeout: float, stats: Stats,
                           period: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period)
        now = loop.time()
        for subscriber in hub.subscribers():
            since = subscriber.sending_since
            if since and now - since > send_timeout and subscriber.writer is not None:
                log.warning("dropping a client that took over %.1f s to accept one frame",
                            send_timeout)
                stats.stalled += 1
                subscriber.sending_since = 0.0
                subscriber.writer.cancel()
            elif (subscriber.opened_at and not subscriber.subscribed_ever
                  and now - subscriber.opened_at > idle_timeout):
                subscriber.opened_at = 0.0
                subscriber.close(Close(CLOSE_IDLE, f"no subscription within {idle_timeout:g} s"))
