"""The servers under test: ours (``ticker serve``) and the baselines in ``bench/baselines/``.

Each step starts its server afresh at the step's tick rate, in its own process pinned to one core,
with its output in a log file; the load generator gets the other core.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ticker

ROOT = Path(ticker.__file__).resolve().parents[1]  # the checkout: feeds/, ticker/, bench/
BASELINES = ROOT / "bench" / "baselines"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ServerKind:
    name: str  # as given to --only
    title: str  # in the report
    script: str | None  # baseline script in bench/baselines/; None for ours
    first_rate: float  # where its ramp starts, in ticks/s produced
    ws: str | None = None  # ours on this uvicorn WebSocket protocol (server.ws_implementation)
    by_default: bool = True  # in a run without --only

    def env(self) -> dict[str, str]:
        return {"TICKER_SERVER_WS_IMPLEMENTATION": self.ws} if self.ws else {}


KINDS = (
    ServerKind("ours", "ticker serve", None, 1000.0),
    # Why websockets-sansio is our default: the same server on uvicorn's other two protocols
    # (run them with --only ours,ours-websockets,ours-wsproto).
    ServerKind("ours-websockets", "ticker serve on uvicorn's websockets (legacy) protocol", None,
               200.0, "websockets", by_default=False),
    ServerKind("ours-wsproto", "ticker serve on uvicorn's wsproto protocol", None, 200.0,
               "wsproto", by_default=False),
    ServerKind("naive", "naive Starlette: json.dumps + send_text per tick per client",
               "naive_starlette.py", 50.0),
    ServerKind("broadcast", "websockets.broadcast(): encoded once, one frame per tick",
               "websockets_broadcast.py", 50.0),
    ServerKind("batched", "Starlette, encoded once, all clients flushed every 50 ms",
               "batched_starlette.py", 50.0),
)
KIND_NAMES = tuple(kind.name for kind in KINDS)


@dataclass(frozen=True, slots=True)
class Cores:
    """Which core the server gets and which the load generator gets (None: not pinned)."""

    server: int | None
    loadgen: int | None
    count: int  # cores this process may use

    @staticmethod
    def available() -> list[int]:
        if hasattr(os, "sched_getaffinity"):
            return sorted(os.sched_getaffinity(0))
        return list(range(os.cpu_count() or 1))

    @classmethod
    def pick(cls) -> Cores:
        cpus = cls.available()
        if len(cpus) < 2 or shutil.which("taskset") is None or not hasattr(os, "sched_setaffinity"):
            return cls(None, None, len(cpus))
        return cls(cpus[0], cpus[1], len(cpus))

    def pin_self(self) -> None:
        """This process only waits during a step; keep it off the server's core."""
        if self.loadgen is not None:
            os.sched_setaffinity(0, {self.loadgen})


def pinned(command: list[str], core: int | None) -> list[str]:
    return command if core is None else ["taskset", "-c", str(core), *command]


def child_env() -> dict[str, str]:
    """No TICKER_* from the caller's shell, and this checkout first on the import path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TICKER_")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    return env


def server_command(kind: ServerKind, port: int, symbols: int, tick_rate: float,
                   seed: int) -> list[str]:
    common = ["--port", str(port), "--symbols", str(symbols), "--tick-rate", f"{tick_rate:g}",
              "--seed", str(seed)]
    if kind.script is None:
        return [sys.executable, "-m", "ticker", "serve", "--host", "127.0.0.1",
                "--log-level", "warning", *common]
    return [sys.executable, str(BASELINES / kind.script), *common]


def missing_baselines() -> list[str]:
    return [kind.script for kind in KINDS
            if kind.script is not None and not (BASELINES / kind.script).is_file()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running(command: list[str], core: int | None, log_path: Path, port: int,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start the server, wait until its port accepts connections, stop it on the way out.

    Run in the log directory so that a ./config.toml of the caller's does not apply.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(pinned(command, core), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=log_path.parent,
                                   env={**child_env(), **(env or {})})
        try:
            _wait_for_port(process, port, log_path)
            yield process
        finally:
            stop(process)


def _wait_for_port(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening "
                               f"(log: {log_path})")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {START_TIMEOUT_S:.0f} s "
                       f"(log: {log_path})")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


__all__ = ["KINDS", "KIND_NAMES", "Cores", "ServerKind", "free_port", "missing_baselines",
           "running", "server_command"]
