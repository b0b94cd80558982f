"""HTTP/2 and gRPC peer fixtures (imported by conftest.py); the peers are in tests/peers/grpc_echo.

``grpc_echo`` (session) -> PeerServer
    tests/peers/grpc_echo/server.py: a grpcio server (generic handlers, bytes messages), service
    ``mesh.test.Echo`` on a free 127.0.0.1 port (``.port .address .pid .log``). Its methods
    and helpers (``big_payload``, ``stream_message``, ``TRAILER_BIN``...) are in
    ``echo_module()``; ``grpc_channel(port)`` opens a grpcio client channel with 64 MiB message
    limits and no HTTP proxy.
``h2c_upstream`` (session) -> PeerServer
    tests/peers/grpc_echo/h2c_server.py: hypercorn serving a tiny ASGI app; HTTP/1.1, h2c prior
    knowledge and ``Upgrade: h2c`` on one port. Routes /hello, POST /echo, /big?n=, /status/N;
    every response says the HTTP version hypercorn saw in ``x-upstream-http-version``.

Both are started with ``python FILE --port 0`` and print ``READY <port>``; they are skipped
when grpcio / hypercorn are missing (failed under CI=true) and stopped by PID at teardown.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .mesh_harness import IN_CI, LIVE_LOGS, LOOPBACK, READY_TIMEOUT, stop_process, tail

PEER_DIR = Path(__file__).resolve().parents[1] / "peers" / "grpc_echo"
GRPC_SERVER = PEER_DIR / "server.py"
H2C_SERVER = PEER_DIR / "h2c_server.py"
SERVICE = "mesh.test.Echo"
MAX_MESSAGE = 64 * 1024 * 1024
GRPC_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.enable_http_proxy", 0),  # never route 127.0.0.1 through an environment proxy
    ("grpc.enable_retries", 0),  # one attempt per call: what the test sees is what happened
]


def require_module(name: str, pip_name: str | None = None) -> ModuleType:
    """Import a Python peer library; skip (fail under CI=true) when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = (f"integration test needs the Python package {pip_name or name} "
               f"(pip install -e '.[test]'): {exc}")
        if IN_CI:
            pytest.fail(f"{msg}; CI=true, so a missing peer is an error, not a skip",
                        pytrace=False)
        pytest.skip(msg, allow_module_level=True)  # also from a test module's import


_echo_module: ModuleType | None = None


def echo_module() -> ModuleType:
    """tests/peers/grpc_echo/server.py as a module (big_payload, stream_message, TRAILER_BIN...)."""
    global _echo_module
    if _echo_module is None:
        require_module("grpc", "grpcio")
        spec = importlib.util.spec_from_file_location("grpc_echo_server", GRPC_SERVER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _echo_module = module
    return _echo_module


@contextlib.contextmanager
def grpc_channel(port: int) -> Iterator[Any]:
    """A grpcio insecure channel to 127.0.0.1:port (64 MiB messages), closed at exit."""
    grpc = require_module("grpc", "grpcio")
    channel = grpc.insecure_channel(f"{LOOPBACK}:{port}", options=GRPC_CHANNEL_OPTIONS)
    try:
        yield channel
    finally:
        channel.close()


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"


@dataclass
class PeerServer:
    """A peer started as ``python FILE --port 0`` that printed ``READY <port>``."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    host: str = LOOPBACK

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_peer(name: str, script: Path, workdir: Path,
               timeout: float = READY_TIMEOUT) -> PeerServer:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(script), "--port", "0"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return PeerServer(name, int(line.split()[1]), proc, log)
        time.sleep(0.05)
    code = proc.poll()
    stop_process(proc)
    pytest.fail(f"{name} ({script.name}) did not print READY within {timeout:.0f} s "
                f"(exit code {code})\n--- its output ---\n{tail(log)}", pytrace=False)


@contextlib.contextmanager
def _peer(name: str, script: Path, workdir: Path) -> Iterator[PeerServer]:
    peer = start_peer(name, script, workdir)
    LIVE_LOGS[f"{name} pid {peer.pid}"] = peer.log
    try:
        yield peer
    finally:
        LIVE_LOGS.pop(f"{name} pid {peer.pid}", None)
        stop_process(peer.proc)


@pytest.fixture(scope="session")
def grpc_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    """The grpcio ``mesh.test.Echo`` server (tests/peers/grpc_echo/server.py)."""
    require_module("grpc", "grpcio")
    with _peer("grpc echo server", GRPC_SERVER, tmp_path_factory.mktemp("grpc-echo")) as peer:
        yield peer


@pytest.fixture(scope="session")
def h2c_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    """hypercorn (HTTP/1.1 + h2c) serving tests/peers/grpc_echo/h2c_server.py's ASGI app."""
    require_module("hypercorn")
    with _peer("hypercorn h2c upstream", H2C_SERVER, tmp_path_factory.mktemp("h2c")) as peer:
        yield peer
