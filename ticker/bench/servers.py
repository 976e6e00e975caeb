"""The servers under test: ours (``ticker serve``) and the baselines in ``bench/baselines/``.

Each step starts its server afresh at the step's tick rate, in its own process pinned to one core,
with its output in a log file; the load generator gets the other core.

The Node.js baseline (``node_ws/server.js``) needs node, npm and its locked ``ws``: before its
first step, ``npm ci`` installs it into ``bench/baselines/node_ws/node_modules`` (git-ignored),
once per version of its package files; without node or npm, or if npm cannot install, it is
reported missing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
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
NODE_WS = BASELINES / "node_ws"  # package.json, package-lock.json, server.js
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
NPM_CI_TIMEOUT_S = 180.0
_INSTALLED = ".ticker-installed"  # in node_modules/: sha256 of the package files it came from


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
    ServerKind("node-ws", "Node.js ws, encoded once, one write per client per flush",
               "node_ws/server.js", 50.0,
               by_default=shutil.which("node") is not None and shutil.which("npm") is not None),
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
    if kind.script.endswith(".js"):
        node_ws_problem()  # npm ci, once; if it failed, the step fails and its log says why
        # Node runs the market (node_feed.py, under this Python) as its child, on its core.
        return [shutil.which("node") or "node", str(BASELINES / kind.script),
                "--python", sys.executable, *common]
    return [sys.executable, str(BASELINES / kind.script), *common]


def missing_baselines() -> list[str]:
    """The baselines' scripts that cannot run here: not in this checkout, or (node-ws) no node,
    npm or installed ``ws`` (each reason said once on stderr)."""
    return [kind.script for kind in KINDS
            if kind.script is not None and (
                not (BASELINES / kind.script).is_file()
                or (kind.script.endswith(".js") and node_ws_problem() is not None))]


@functools.cache
def node_ws_problem() -> str | None:
    """Why the Node.js baseline cannot run, or None once its packages are installed."""
    problem = npm_ci(NODE_WS)
    if problem is not None:
        print(f"ticker bench: node-ws left out: {problem}", file=sys.stderr)
    return problem


def npm_ci(directory: Path, timeout: float = NPM_CI_TIMEOUT_S) -> str | None:
    """``npm ci`` in ``directory`` unless its node_modules came from the same package.json and
    lockfile already; None on success, else what went wrong. One install at a time."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node and npm are needed (Debian: apt-get install nodejs npm)"
    lock = directory / "package-lock.json"
    stamp = directory / "node_modules" / _INSTALLED
    try:
        with lock.open("rb") as file:
            _lock_file(file.fileno())
            package = (directory / "package.json").read_bytes()
            digest = hashlib.sha256(file.read() + package).hexdigest()
            if stamp.is_file() and stamp.read_text().strip() == digest:
                return None
            try:
                done = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
                    cwd=directory, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                    timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                return f"npm ci in {directory} took over {timeout:.0f} s"
            if done.returncode != 0:
                return f"npm ci in {directory} failed ({done.returncode}): {_npm_error(done)}"
            stamp.write_text(digest + "\n")
    except OSError as error:
        return f"cannot install {directory}: {error}"
    return None


def _npm_error(done: subprocess.CompletedProcess[str]) -> str:
    """The first three lines of npm's complaint (its usage text follows), without the prefix."""
    lines = [line.removeprefix("npm error").removeprefix("npm ERR!").strip()
             for line in (done.stderr or done.stdout).splitlines()]
    return "; ".join([line for line in lines if line][:3])


def _lock_file(fd: int) -> None:
    """Hold an exclusive lock on ``fd`` until it is closed (where the OS has flock)."""
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


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
           "node_ws_problem", "npm_ci", "running", "server_command"]
