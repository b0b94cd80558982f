"""Listening sockets and the accept loop: one trio task per connection."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import structlog
import trio

from mesh.net.connection import Connection

__all__ = ["bind", "serve"]

log = structlog.get_logger("mesh.net")

Handler = Callable[[Connection], Awaitable[None]]


def bind(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening socket; SO_REUSEPORT so workers can share it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def serve(sock: socket.socket, handler: Handler, name: str,
                stop: trio.CancelScope | None = None) -> None:
    """Accept until ``stop`` is cancelled, handing each connection to ``handler`` in its own task.

    The handler owns the connection; nothing it raises may reach this loop,
    so it is wrapped in a guard that logs and closes. Once ``stop`` is cancelled (a listener
    left the config) the socket is closed, and the connections already accepted go on until
    they end.
    """
    async with trio.open_nursery() as nursery:
        with stop if stop is not None else trio.CancelScope():
            await _accept(sock, handler, name, nursery)
        sock.close()


async def _accept(sock: socket.socket, handler: Handler, name: str, nursery: trio.Nursery) -> None:
    while True:
        try:
            client, peer = sock.accept()
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
            continue
        except OSError as exc:  # EMFILE and friends: back off, do not die
            log.error("accept_failed", listener=name, error=str(exc))
            await trio.sleep(0.1)
            continue
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        nursery.start_soon(_guard, handler, Connection(client, peer[:2]), name)


async def _guard(handler: Handler, conn: Connection, name: str) -> None:
    try:
        await handler(conn)
    except Exception as exc:  # a bug in one connection must not take the worker down
        log.exception("connection_crashed", listener=name, peer=conn.peer, error=repr(exc))
    finally:
        conn.close()
