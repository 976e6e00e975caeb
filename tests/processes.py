"""Real ticker processes (and a real redis-server) for end-to-end tests across processes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import UNIT

READY = re.compile(r"dashboard: http://[^:]+:(\d+)/")


def require_tool(name: str) -> str:
    """The tool's path; a skip when it is missing, a failure where CI demands every tool."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {name})"
        if os.environ.get("TICKER_REQUIRE_ALL_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process whose stderr is collected in the background (and searchable)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append(line)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 15.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout * UNIT
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = pattern.search(line)
                if match:
                    return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no {pattern.pattern!r} in:\n{''.join(self.lines)}")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout * UNIT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._reader.join(timeout=2)
        if self.popen.stderr is not None:
            self.popen.stderr.close()
        return self.popen.returncode


def ticker(*args: str, cwd: Path) -> Process:
    return Process([sys.executable, "-m", "ticker", *args], cwd)


@contextlib.contextmanager
def ticker_node(*args: str, cwd: Path) -> Iterator[tuple[Process, int]]:
    """`ticker serve --port 0 ...`, yielding the process and the port it listens on."""
    process = ticker("serve", "--port", "0", *args, cwd=cwd)
    try:
        port = int(process.wait_for(READY).group(1))
        yield process, port
    finally:
        process.stop()


class RedisServer:
    """A real redis-server on a free port in a temporary directory; can be stopped and started
    again on the same port (a restart mid-stream)."""

    def __init__(self, directory: Path) -> None:
        self.binary = require_tool("redis-server")
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10 * UNIT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def wait_ready(port: int, timeout: float = 20.0) -> None:
    """Until the node's /readyz says ready (a relay node waits for its feed)."""
    import httpx

    deadline = time.monotonic() + timeout * UNIT
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"node on port {port} never became ready")
