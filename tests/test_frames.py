"""Text frames written straight to the transport are byte for byte what websockets would write."""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Frame, Opcode

from tests.servers import make_config, running_server
from tests.wsclient import TickerClient
from ticker import subscriber as subscriber_module
from ticker.transport.frames import header_length, text_frame_header


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 300_000])
def test_the_header_matches_websockets_own_serializer(length: int) -> None:
    payload = b"x" * length
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame_header(length) + payload == expected
    assert header_length(len(expected)) == len(text_frame_header(length))


@pytest.mark.e2e
@pytest.mark.anyio
async def test_the_default_server_writes_frames_directly_and_clients_read_them() -> None:
    with running_server(make_config(**{"feed.tick_rate": 2000.0})) as server:
        await asyncio.sleep(1.0)  # snapshots of several KB: frames with a 2-byte length
        client = await TickerClient.open(server.ws_url)
        await client.send({"op": "subscribe", "symbols": ["AAPL", "NVDA", "TSLA"]})
        snapshot = await client.recv_type("snapshot")
        assert len(snapshot["ticks"]) > 50
        await client.until_ticks("TSLA", len(client.ticks["TSLA"]) + 30)  # seqs checked
        await client.close()
        ws = server.node.stats.transports["ws"]
        assert ws.direct_frames > 0 and ws.direct_frames <= ws.frames
        assert ws.socket_frames > 0 and ws.socket_frames <= ws.direct_frames


@pytest.mark.e2e
@pytest.mark.anyio
async def test_without_the_compiled_send_the_transport_writes_and_nothing_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriber_module, "compiled_send_frames", None)
    with running_server(make_config(**{"feed.tick_rate": 2000.0})) as server:
        clients = [await TickerClient.open(server.ws_url) for _ in range(3)]
        for client in clients:
            await client.send({"op": "subscribe", "symbols": ["AAPL", "TSLA"]})
            await client.recv_type("snapshot")
        for client in clients:
            await client.until_ticks("TSLA", len(client.ticks["TSLA"]) + 30)  # seqs checked
            await client.close()
        ws = server.node.stats.transports["ws"]
        assert ws.direct_frames > 0 and ws.socket_frames == 0


@pytest.mark.e2e
@pytest.mark.anyio
async def test_an_accepted_connection_lets_go_of_its_handshake_and_works_on() -> None:
    with running_server(make_config(**{"feed.tick_rate": 500.0})) as server:
        client = await TickerClient.open(server.ws_url)
        await client.send({"op": "subscribe", "symbols": ["AAPL"]})
        await client.recv_type("snapshot")
        protocols = [p for p in server.server.server_state.connections
                     if type(p).__name__ == "WebSocketsSansIOProtocol"]
        assert len(protocols) == 1
        assert protocols[0].request is None and protocols[0].response is None
        await client.until_ticks("AAPL", len(client.ticks["AAPL"]) + 5)  # seqs checked
        await client.send({"op": "ping", "id": 7})
        assert (await client.recv_type("pong"))["id"] == 7
        await client.close()
