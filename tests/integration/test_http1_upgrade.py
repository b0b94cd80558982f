"""Upgrade is relayed: a real WebSocket client and server (the websockets package) talk through rpcmesh."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from .mesh_harness import LOOPBACK, free_port

websockets = pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402
from websockets.sync.server import serve  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture()
def ws_upstream() -> Iterator[int]:
    port = free_port()

    def echo(ws) -> None:  # type: ignore[no-untyped-def]
        for message in ws:
            ws.send(message)

    server = serve(echo, LOOPBACK, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.shutdown()
    thread.join(5)


def test_websocket_through_the_proxy(mesh_proxy, ws_upstream: int) -> None:
    proxy = mesh_proxy(f"{LOOPBACK}:{ws_upstream}")
    fds = proxy.open_fds()
    with connect(f"ws://{LOOPBACK}:{proxy.port}/chat", open_timeout=5, close_timeout=2) as ws:
        for text in ("hello", "x" * 100_000, "bye"):
            ws.send(text)
            assert ws.recv(timeout=5) == text
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=5) == b"\x00\x01binary"
    # the tunnel closes with the client: no descriptor is left behind
    deadline = time.monotonic() + 5
    while proxy.open_fds() > fds + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proxy.open_fds() <= fds + 2
