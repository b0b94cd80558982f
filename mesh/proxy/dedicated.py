"""Upstream connections that belong to one downstream client.

A request whose codec marks it ``extensions["dedicated"] = True`` must not sit on a shared
upstream connection: Redis BLPOP & co may hold their connection for seconds, where every other
client's replies would queue behind them, and a MULTI transaction lives on one connection. It
goes on a connection of its own, one per client and endpoint, opened on first use and closed
with the client; requests on it are answered in order by one reader task. No route timeout
applies: such a command carries its own (``BLPOP key 5``), and the proxy waits as long as the
server does.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import structlog
import trio

from mesh.cluster import UpstreamEndpoint
from mesh.cluster.pool import connect_endpoint
from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Codec,
    ConnectionOptions,
    Event,
    Headers,
    RemoteProtocolError,
    Role,
    Status,
)
from mesh.net.connection import Connection, ConnectionBroken

__all__ = ["DedicatedLinks"]

log = structlog.get_logger("mesh.proxy")


class Sink(Protocol):
    def on_event(self, event: Event) -> None: ...

    def on_failure(self, status: Status, reason: str) -> None: ...


class _Drop:
    def on_event(self, event: Event) -> None:
        pass

    def on_failure(self, status: Status, reason: str) -> None:
        pass


_DROP = _Drop()


class _Link:
    """One client's connection to one endpoint; replies come back in request order."""

    def __init__(self, conn: Connection, codec: Codec, options: ConnectionOptions,
                 endpoint: UpstreamEndpoint) -> None:
        self.conn = conn
        self.cc = codec.connection(Role.CLIENT, options)
        self.endpoint = endpoint
        self.waiting: deque[tuple[int, Sink]] = deque()
        self._next_id = 1

    async def send(self, request: Headers, sink: Sink) -> None:
        uid = self._next_id
        self._next_id += 1
        self.waiting.append((uid, sink))
        self.conn.write_buffers(self.cc.send(Headers(uid, request.fields, request.end_stream,
                                                     request.extensions)))
        await self.conn.flush()

    async def read(self) -> None:
        reason = "upstream closed the connection"
        try:
            while True:
                event = self.cc.next_event()
                if event is NEED_DATA:
                    self.cc.receive_data(await self.conn.recv())
                    continue
                if event is CLOSED or event is PAUSED:
                    break
                if self.waiting and self.waiting[0][0] == event.stream_id:
                    _, sink = self.waiting[0]
                    if event.end_stream:
                        self.waiting.popleft()
                    sink.on_event(event)
        except (ConnectionBroken, RemoteProtocolError) as exc:
            reason = str(exc)
        finally:
            self.conn.close()
            waiting, self.waiting = self.waiting, deque()
            for _, sink in waiting:
                sink.on_failure(Status.UNAVAILABLE, f"upstream {self.endpoint.address}: {reason}")


class DedicatedLinks:
    """The dedicated upstream connections of one downstream session."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._links: dict[UpstreamEndpoint, _Link] = {}

    async def send(self, codec: Codec, options: ConnectionOptions, endpoint: UpstreamEndpoint,
                   connect_timeout: float, request: Headers, sink: Sink) -> None:
        """Send ``request`` on this client's connection to ``endpoint``. Raises UpstreamError."""
        link = self._links.get(endpoint)
        if link is None or link.conn.closed:
            conn = await connect_endpoint(endpoint, connect_timeout)
            link = self._links[endpoint] = _Link(conn, codec, options, endpoint)
            self._nursery.start_soon(link.read)
        try:
            # requests the codec wants sent first, whose replies nobody reads (a held-back
            # MULTI ahead of a transaction's first command)
            for before in request.extensions.get("before", ()):
                await link.send(before, _DROP)
            await link.send(request, sink)
        except ConnectionBroken:
            link.conn.close()  # the reader fails what waits on it

    def close(self) -> None:
        for link in self._links.values():
            link.conn.close()
        self._links.clear()
