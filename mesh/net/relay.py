"""L4 pass-through: bytes relayed both ways unparsed (``protocol: tcp``)."""

from __future__ import annotations

import socket

import trio

from mesh.net.connection import Connection, ConnectionBroken

__all__ = ["relay"]

_CHUNK = 65536


async def relay(a: Connection, b: Connection, initial: bytes = b"") -> tuple[int, int]:
    """Copy a->b and b->a until both directions end; returns bytes each way.

    A half-close is passed on with shutdown(SHUT_WR), so request/response
    protocols that read to EOF still work. Each direction reads into one
    reusable buffer and waits for the other side to take the bytes before
    reading more (backpressure).
    """
    counts = [0, 0]
    if initial:
        b.write(initial)
        await b.flush()
        counts[0] += len(initial)

    async def pump(src: Connection, dst: Connection, index: int) -> None:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        try:
            while True:
                n = await _recv_into(src, buf)
                if n == 0:
                    break
                dst.write(view[:n])
                await dst.flush()
                counts[index] += n
        except ConnectionBroken:
            pass
        finally:
            _shutdown_write(dst)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, a, b, 0)
        nursery.start_soon(pump, b, a, 1)
    return counts[0], counts[1]


async def _recv_into(conn: Connection, buf: bytearray) -> int:
    sock = conn.sock
    while True:
        try:
            return sock.recv_into(buf)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
        except OSError as exc:
            raise ConnectionBroken(str(exc)) from exc


def _shutdown_write(conn: Connection) -> None:
    try:
        conn.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
