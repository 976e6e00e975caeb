"""One task tends every connection, at a cost that follows what happens, not how many there are.

Each turn (once a second, or twice per ping interval where that is more often) it
- drops a client whose current send has not completed within ``send_timeout`` (it stopped
  reading and its socket buffers are full: a close frame would not get through either); only
  connections with a send in progress are looked at (``Hub.sending``);
- closes a WebSocket that has subscribed to nothing ``idle_timeout`` after it opened (4001);
  only connections not yet subscribed are looked at, oldest first (``Hub.awaiting_subscription``);
- with ``ping_interval``, visits a share of the connections so that each has its turn once per
  interval: a quiet one gets a ping, one that has not answered its ping by its next turn is
  failed (ticker/transport/keepalive.py says why connections with traffic need none).
"""

from __future__ import annotations

import asyncio
import logging
import math

from ticker.hub import Hub
from ticker.protocol import CLOSE_IDLE
from ticker.stats import Stats
from ticker.subscriber import Close, Subscriber

log = logging.getLogger("ticker.ws")


class Janitor:
    def __init__(self, hub: Hub, send_timeout: float, idle_timeout: float, stats: Stats,
                 ping_interval: float | None = None) -> None:
        self.hub = hub
        self.send_timeout = send_timeout
        self.idle_timeout = idle_timeout
        self.stats = stats
        self.ping_interval = ping_interval
        self.period = 1.0 if not ping_interval else min(1.0, ping_interval / 2)
        self._round: list[Subscriber] = []  # this ping round's connections still to visit
        self._per_turn = 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.period)
            self.turn(loop.time())

    def turn(self, now: float) -> None:
        self.drop_stalled(now)
        self.close_idle(now)
        if self.ping_interval:
            self.keep_alive(now, self.ping_interval)

    def drop_stalled(self, now: float) -> None:
        for subscriber in list(self.hub.sending):
            since = subscriber.sending_since
            if since and now - since > self.send_timeout and subscriber.writer is not None:
                log.warning("dropping a client that took over %.1f s to accept one frame",
                            self.send_timeout)
                self.stats.stalled += 1
                subscriber.end_send()
                subscriber.writer.cancel()

    def close_idle(self, now: float) -> None:
        waiting = self.hub.awaiting_subscription
        while waiting:
            subscriber = next(iter(waiting))
            if subscriber.subscribed_ever or not subscriber.opened_at:
                del waiting[subscriber]  # subscribed since: nothing to watch
                continue
            if now - subscriber.opened_at <= self.idle_timeout:
                return  # and so is every later one: they are in the order they opened
            del waiting[subscriber]
            subscriber.opened_at = 0.0
            subscriber.close(Close(CLOSE_IDLE, f"no subscription within {self.idle_timeout:g} s"))

    def keep_alive(self, now: float, interval: float) -> None:
        if not self._round:
            self._round = self.hub.subscribers()
            self._per_turn = max(1, math.ceil(len(self._round) * self.period / interval))
        visit = self._round[-self._per_turn:]
        del self._round[-self._per_turn:]
        for subscriber in visit:
            pinger = subscriber.pinger
            if pinger is None or not pinger.usable():
                continue
            if pinger.awaiting_pong:
                # Its previous turn sent the ping, about an interval ago (at least half of one:
                # a round that started late must not fail a ping sent just before it).
                if now - pinger.sent_at >= interval / 2:
                    log.info("failing a WebSocket that answered no ping for %.1f s",
                             now - pinger.sent_at)
                    self.stats.unanswered_pings += 1
                    pinger.fail()
            elif now - subscriber.wrote_at >= interval:
                pinger.ping(now)
                self.stats.pings += 1


__all__ = ["Janitor"]
