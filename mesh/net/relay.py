"""L4 pass-through: bytes relayed both ways unparsed (``protocol: tcp``)."""

from __future__ import annotations

import socket
import time

import trio

from mesh.net import poller
from mesh.net.connection import Connection, ConnectionBroken
from mesh.net.reaper import DeadlineReaper

__all__ = ["relay"]

_CHUNK = 65536


class _IdleWatch:
    """Closes both sides once no byte has moved for ``idle`` seconds (swept by the reaper)."""

    __slots__ = ("a", "b", "idle", "deadline")

    def __init__(self, a: Connection, b: Connection, idle: float) -> None:
        self.a, self.b, self.idle = a, b, idle
        self.deadline = time.monotonic() + idle

    def expire(self) -> None:
        self.a.close()  # wakes both pumps with ConnectionBroken
        self.b.close()


async def relay(a: Connection, b: Connection, initial: bytes = b"", idle: float = 0.0,
                reaper: DeadlineReaper | None = None) -> tuple[int, int]:
    """Copy a->b and b->a until both directions end; returns bytes each way.

    A half-close is passed on with shutdown(SHUT_WR), so request/response
    protocols that read to EOF still work. Each direction reads into one
    reusable buffer and waits for the other side to take the bytes before
    reading more (backpressure). With ``idle`` and a ``reaper``, both sides are
    closed once nothing has moved either way for ``idle`` seconds.
    """
    watch = _IdleWatch(a, b, idle) if idle > 0 and reaper is not None else None
    if watch is not None and reaper is not None:
        reaper.add(watch)
    try:
        return await _relay(a, b, initial, watch)
    finally:
        if watch is not None and reaper is not None:
            reaper.discard(watch)


async def _relay(a: Connection, b: Connection, initial: bytes,
                 watch: _IdleWatch | None) -> tuple[int, int]:
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
                if watch is not None:
                    watch.deadline = time.monotonic() + watch.idle
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
            try:
                await poller.wait_readable(sock)
            except trio.ClosedResourceError:
                raise ConnectionBroken("closed while waiting to read") from None
        except OSError as exc:
            raise ConnectionBroken(str(exc)) from exc


def _shutdown_write(conn: Connection) -> None:
    try:
        conn.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
