"""A Coinbase Exchange market-data feed on 127.0.0.1 for tests, scriptable per connection.

The fake keeps an exchange's state apart from any connection (each product's trade ids, latest
trade and latest ticker), so a reconnecting client gets the last_match Coinbase would send.
Each connection runs the next script (the last one again once they run out); a script is an
async function of a :class:`FakeConnection`, and the connection closes when it returns::

    async def script(conn: FakeConnection) -> None:
        await conn.handshake()
        await conn.trade("BTC-USD", "400.23", "0.0012")
        await conn.hold()  # until the client goes

Tests in the fake's loop wait on its state with :meth:`FakeCoinbase.wait_until`; a test whose
server runs in another thread uses :class:`ThreadedFake`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.servers import UNIT

# product -> (base, quote); anything else is "not a valid product"
PRODUCTS = {"BTC-USD": ("BTC", "USD"), "ETH-USD": ("ETH", "USD"), "ETH-EUR": ("ETH", "EUR")}
CURRENCIES = {"BTC": "Bitcoin", "ETH": "Ethereum", "USD": "United States Dollar", "EUR": "Euro"}
T0 = datetime.datetime(2025, 11, 23, 6, 40, tzinfo=datetime.UTC)

Script = Callable[["FakeConnection"], Awaitable[None]]


def coinbase_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def status_message(products: list[str] | None = None) -> dict[str, Any]:
    """A status message like the real one: every product and currency, with extra fields."""
    listed = products if products is not None else list(PRODUCTS)
    return {
        "type": "status",
        "products": [{"id": product, "base_currency": PRODUCTS[product][0],
                      "quote_currency": PRODUCTS[product][1], "display_name": product,
                      "status": "online", "min_market_funds": "1", "status_message": "",
                      "fx_stablecoin": False, "trading_disabled": False}
                     for product in listed],
        "currencies": [{"id": code, "name": name, "status": "online", "min_size": "0.00000001",
                        "convertible_to": [], "details": {"type": "crypto"}}
                       for code, name in CURRENCIES.items()],
    }


class FakeCoinbase:
    def __init__(self, *scripts: Script, first_trade_id: int = 100) -> None:
        self.scripts = scripts or (serve_forever,)
        self.connections: list[FakeConnection] = []
        self.received: list[dict[str, Any]] = []  # every client message, in order
        self.refused = 0  # subscriptions refused (an unknown product)
        self.rejected = 0  # connections turned away at the HTTP handshake while ``down``
        self.down = False
        self.last: dict[str, dict[str, Any]] = {}  # each product's latest match
        self.tickers: dict[str, dict[str, Any]] = {}  # each product's latest ticker
        self._next_id: dict[str, int] = {}
        self._first_trade_id = first_trade_id
        self._clock = 0
        self._changed = asyncio.Event()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def __aenter__(self) -> FakeCoinbase:
        self._server = await serve(self._handle, "127.0.0.1", 0,
                                   process_request=self._process_request)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    # -- waiting on the fake -----------------------------------------------------------------------

    def poke(self) -> None:
        """Wake every :meth:`wait_until`: something changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, condition: Callable[[], bool], what: str,
                         timeout: float = 5.0) -> None:
        try:
            async with asyncio.timeout(timeout * UNIT):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    # -- the exchange ------------------------------------------------------------------------------

    def make_match(self, product: str, price: str, size: str,
                   trade_id: int | None = None) -> dict[str, Any]:
        """The next trade of ``product`` (or one with ``trade_id``: a gap or a repeat)."""
        if trade_id is None:
            trade_id = self._next_id.get(product, self._first_trade_id)
        self._next_id[product] = max(self._next_id.get(product, 0), trade_id + 1)
        self._clock += 1
        moment = T0 + datetime.timedelta(milliseconds=self._clock, microseconds=459)
        match = {"type": "match", "trade_id": trade_id, "sequence": 5000 + self._clock,
                 "maker_order_id": f"m-{self._clock}", "taker_order_id": f"t-{self._clock}",
                 "time": coinbase_time(moment), "product_id": product, "size": size,
                 "price": price, "side": "sell"}
        if trade_id >= self.last.get(product, {}).get("trade_id", 0):
            self.last[product] = match
        return match

    def make_ticker(self, product: str, bid: str, ask: str, open_24h: str) -> dict[str, Any]:
        self._clock += 1
        last = self.last.get(product, {})
        ticker = {"type": "ticker", "sequence": 5000 + self._clock, "product_id": product,
                  "price": last.get("price", bid), "open_24h": open_24h,
                  "volume_24h": "1234.5", "low_24h": open_24h, "high_24h": ask,
                  "volume_30d": "98765.4", "best_bid": bid, "best_bid_size": "0.5",
                  "best_ask": ask, "best_ask_size": "0.7", "side": "buy",
                  "time": coinbase_time(T0 + datetime.timedelta(milliseconds=self._clock)),
                  "trade_id": last.get("trade_id", 0), "last_size": last.get("size", "0")}
        self.tickers[product] = ticker
        return ticker

    # -- connections -------------------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection,
                               request: Request) -> Response | None:
        if not self.down:
            return None
        self.rejected += 1
        self.poke()
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "down for a test\n")

    async def _handle(self, ws: ServerConnection) -> None:
        conn = FakeConnection(self, ws)
        script = self.scripts[min(len(self.connections), len(self.scripts) - 1)]
        self.connections.append(conn)
        self.poke()
        try:
            await script(conn)
        except ConnectionClosed:
            pass
        finally:
            await conn.finish()
            self.poke()


class FakeConnection:
    def __init__(self, fake: FakeCoinbase, ws: ServerConnection) -> None:
        self.fake = fake
        self.ws = ws
        self.products: list[str] = []
        self.channels: list[str] = []
        self.unsubscribed: list[str] = []  # channels the client unsubscribed from
        self.closed = False
        self._reader: asyncio.Task[None] | None = None

    async def handshake(self, *, initial: bool = True, status: bool = True) -> bool:
        """Read the subscribe message; refuse an unknown product as Coinbase does, or confirm
        and (``initial``) send what subscribing brings: each product's last_match, its ticker
        and, when ``status`` (and subscribed), a status message."""
        message = orjson.loads(await asyncio.wait_for(self.ws.recv(), 5 * UNIT))
        self.fake.received.append(message)
        assert message["type"] == "subscribe", message
        self.products, self.channels = message["product_ids"], message["channels"]
        unknown = [product for product in self.products if product not in PRODUCTS]
        if unknown:
            await self.send({"type": "error", "message": "Failed to subscribe",
                             "reason": f"{unknown[0]} is not a valid product"})
            self.fake.refused += 1
            self.fake.poke()
            return False
        await self.send({"type": "subscriptions",
                         "channels": [{"name": name, "product_ids": self.products}
                                      for name in self.channels]})
        self._reader = asyncio.create_task(self._read())
        if initial:
            for product in self.products:
                if "matches" in self.channels and product in self.fake.last:
                    await self.send({**self.fake.last[product], "type": "last_match"})
                if "ticker" in self.channels and product in self.fake.tickers:
                    await self.send(self.fake.tickers[product])
            if status and "status" in self.channels:
                await self.send(status_message())
        return True

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def trade(self, product: str, price: str, size: str,
                    trade_id: int | None = None) -> dict[str, Any]:
        match = self.fake.make_match(product, price, size, trade_id)
        await self.send(match)
        return match

    async def ticker(self, product: str, bid: str, ask: str, open_24h: str) -> None:
        await self.send(self.fake.make_ticker(product, bid, ask, open_24h))

    async def heartbeat(self, product: str, last_trade_id: int | None = None) -> None:
        if last_trade_id is None:
            last_trade_id = self.fake.last[product]["trade_id"]
        await self.send({"type": "heartbeat", "sequence": 9000, "product_id": product,
                         "last_trade_id": last_trade_id, "time": coinbase_time(T0)})

    async def hold(self) -> None:
        """Stay connected, sending nothing more, until the client goes."""
        await self.ws.wait_closed()

    async def finish(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._reader
        self.closed = True

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                message = orjson.loads(raw)
                self.fake.received.append(message)
                if message.get("type") == "unsubscribe":
                    self.unsubscribed += message.get("channels", [])
                self.fake.poke()


async def serve_forever(conn: FakeConnection) -> None:
    """The default script: the handshake, then quiet until the client goes."""
    if await conn.handshake():
        await conn.hold()


class ThreadedFake:
    """A :class:`FakeCoinbase` on its own event loop in a thread, for a test whose server runs
    in a thread too: the test's loop may block (starting the server) while the fake serves."""

    def __init__(self, fake: FakeCoinbase, loop: asyncio.AbstractEventLoop) -> None:
        self.fake = fake
        self.loop = loop

    @property
    def url(self) -> str:
        return self.fake.url

    async def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` on the fake's loop and return its result."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    async def wait_until(self, condition: Callable[[], bool], what: str,
                         timeout: float = 5.0) -> None:
        await self.run(self.fake.wait_until(condition, what, timeout))


@contextlib.contextmanager
def threaded_fake(*scripts: Script) -> Iterator[ThreadedFake]:
    ready = threading.Event()
    started: list[ThreadedFake] = []
    failed: list[BaseException] = []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        async with FakeCoinbase(*scripts) as fake:
            stop.append(asyncio.Event())
            started.append(ThreadedFake(fake, asyncio.get_running_loop()))
            ready.set()
            await stop[0].wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as error:
            failed.append(error)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="fake-coinbase", daemon=True)
    thread.start()
    ready.wait(10 * UNIT)
    if not started:
        raise RuntimeError(f"the fake Coinbase did not start: {failed}")
    try:
        yield started[0]
    finally:
        started[0].loop.call_soon_threadsafe(stop[0].set)
        thread.join(10 * UNIT)
        if thread.is_alive():
            raise RuntimeError("the fake Coinbase did not stop")
        if failed:
            raise failed[0]


__all__ = ["CURRENCIES", "PRODUCTS", "FakeCoinbase", "FakeConnection", "ThreadedFake",
           "coinbase_time", "serve_forever", "status_message", "threaded_fake"]
