"""The ``ticker`` command, run as ``python -m ticker`` in a subprocess from an empty directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import ticker

# The directory that holds the ``ticker`` package: a source checkout need not be installed.
IMPORT_ROOT = str(Path(ticker.__file__).resolve().parents[1])
FLAGS = ("--config", "--host", "--port", "--symbols", "--tick-rate", "--seed")
QUICK_S = 30.0  # every subprocess that should end on its own
START_S = 20.0  # for the server to print its address
EXIT_S = 5.0  # for the server to stop after SIGTERM / SIGINT
WS_S = 10.0  # for any one WebSocket message
DASHBOARD = re.compile(r"dashboard: http://127\.0\.0\.1:(\d+)/")


def child_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TICKER_")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = IMPORT_ROOT + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_ticker(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ticker", *args], cwd=cwd, env=child_env(**env),
                          capture_output=True, text=True, timeout=QUICK_S, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


# -- help ------------------------------------------------------------------------------------------


def test_help_lists_the_serve_command(tmp_path: Path) -> None:
    result = run_ticker(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: ticker" in result.stdout
    assert "serve" in result.stdout
    assert "--version" in result.stdout


def test_serve_help_mentions_every_flag(tmp_path: Path) -> None:
    result = run_ticker(tmp_path, "serve", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: ticker serve" in result.stdout
    missing = [flag for flag in FLAGS if flag not in result.stdout]
    assert not missing, f"serve --help does not mention {missing}:\n{result.stdout}"


def test_no_command_prints_help_and_fails(tmp_path: Path) -> None:
    result = run_ticker(tmp_path)
    assert result.returncode == 2
    assert "serve" in result.stdout


# -- configuration errors: exit 2, one line naming the key, no traceback ---------------------------


def test_config_file_with_unknown_key(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[server]\nprot = 9000\n", encoding="utf-8")
    line = assert_one_line_error(run_ticker(tmp_path, "serve", "--config", "bad.toml",
                                            "--port", "0"), "server.prot")
    assert line.startswith("ticker: ")


def test_bad_environment_value(tmp_path: Path) -> None:
    assert_one_line_error(run_ticker(tmp_path, "serve", TICKER_PORT="abc"), "server.port")


def test_bad_flag_value_names_the_key(tmp_path: Path) -> None:
    assert_one_line_error(run_ticker(tmp_path, "serve", "--port", "0", "--seed", "-1"),
                          "feed.seed")


def test_config_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[hub]\nsnapshot_sise = 5\n", encoding="utf-8")
    assert_one_line_error(run_ticker(tmp_path, "serve", "--port", "0"), "hub.snapshot_sise")


def test_missing_config_file(tmp_path: Path) -> None:
    line = assert_one_line_error(
        run_ticker(tmp_path, "serve", "--config", "missing.toml", "--port", "0"),
        "missing.toml")
    assert "not found" in line


def test_config_file_that_is_not_toml(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("[server\n", encoding="utf-8")
    assert_one_line_error(run_ticker(tmp_path, "serve", "--config", "broken.toml",
                                     "--port", "0"), "broken.toml", "TOML")


def test_config_path_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    assert_one_line_error(run_ticker(tmp_path, "serve", "--config", "conf.d", "--port", "0"),
                          "conf.d")


# -- a real server ---------------------------------------------------------------------------------


class Server:
    """``ticker serve`` in a subprocess; a thread collects its stderr line by line."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ticker", "serve", *args], cwd=cwd, env=child_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_port(self) -> int:
        deadline = time.monotonic() + START_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"server exited with {self.process.wait(EXIT_S)} before it "
                            f"listened:\n{''.join(self.seen)}")
            self.seen.append(line)
            if match := DASHBOARD.search(line):
                return int(match.group(1))
        pytest.fail(f"no 'dashboard: http://127.0.0.1:PORT/' within {START_S} s:\n"
                    f"{''.join(self.seen)}")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stderr(self) -> str:
        """All of stderr, once the process has exited."""
        self._reader.join(EXIT_S)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return "".join(self.seen)
            if line is not None:
                self.seen.append(line)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(EXIT_S)
        if self.process.stderr is not None:
            self._reader.join(EXIT_S)
            self.process.stderr.close()


@contextlib.contextmanager
def ticker_serve(cwd: Path, *args: str) -> Iterator[Server]:
    server: Server | None = None
    try:
        server = Server(cwd, *args)
        server.port = server.wait_for_port()
        yield server
    finally:
        if server is not None:
            server.kill()


async def recv_json(ws: ClientConnection) -> dict[str, object]:
    message = orjson.loads(await asyncio.wait_for(ws.recv(), WS_S))
    assert isinstance(message, dict)
    return message


async def recv_until(ws: ClientConnection, kind: str) -> dict[str, object]:
    async with asyncio.timeout(WS_S):
        while True:
            message = await recv_json(ws)
            if message["type"] == kind:
                return message


async def read_forever(ws: ClientConnection) -> None:
    async with asyncio.timeout(WS_S):
        while True:
            await ws.recv()


async def close_code(ws: ClientConnection) -> int:
    """Read until the server closes the connection; return the code of its close frame."""
    with pytest.raises(ConnectionClosed) as closed:
        await read_forever(ws)
    received = closed.value.rcvd
    assert received is not None, f"no close frame received: {closed.value!r}"
    assert ws.close_code == received.code
    return received.code


@pytest.mark.e2e
@pytest.mark.anyio
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serve_and_shut_down(tmp_path: Path, stop: signal.Signals) -> None:
    process_ended = None
    with ticker_serve(tmp_path, "--port", "0", "--tick-rate", "200", "--seed", "1") as server:
        async with httpx.AsyncClient(timeout=WS_S) as http:
            health = await http.get(f"http://127.0.0.1:{server.port}/healthz")
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok"}

        async with connect(server.ws_url) as first, connect(server.ws_url) as second:
            for ws in (first, second):
                hello = await recv_json(ws)
                assert hello["type"] == "hello"
                assert "AAPL" in str(hello["symbols"])
                await ws.send(orjson.dumps({"op": "subscribe", "symbols": ["AAPL"]}).decode())
                subscribed = await recv_until(ws, "subscribed")
                assert subscribed["symbols"] == ["AAPL"]
            # Both are live: ticks for AAPL are arriving (200 ticks/s over 22 symbols).
            for ws in (first, second):
                ticks = await recv_until(ws, "ticks")
                assert ticks["ticks"], ticks

            signalled = time.monotonic()
            server.process.send_signal(stop)
            codes = await asyncio.gather(close_code(first), close_code(second))
        assert codes == [1001, 1001]

        try:
            returncode = await asyncio.to_thread(server.process.wait, EXIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_S} s after {stop.name}")
        process_ended = time.monotonic() - signalled
        stderr = server.stderr()
    assert process_ended < EXIT_S
    assert "Traceback" not in stderr, stderr
    assert "ERROR" not in stderr, stderr
    assert returncode == 0, f"exit status {returncode} after {stop.name}:\n{stderr}"


@pytest.mark.e2e
@pytest.mark.anyio
async def test_synthetic_symbols(tmp_path: Path) -> None:
    with ticker_serve(tmp_path, "--port", "0", "--symbols", "50", "--seed", "3") as server:
        async with connect(server.ws_url) as ws:
            hello = await recv_json(ws)
    assert hello["type"] == "hello"
    assert hello["symbols"] == [f"S{k:04d}" for k in range(1, 51)]
