"""Bridging pool modes: one exchange across a one-at-a-time and a multiplexed protocol.

An HTTP/2 client in front of HTTP/1.1 servers (nginx) and an HTTP/1.1 client in front
of an HTTP/2 or gRPC upstream both work through the same router and clusters:

- :class:`PingPongBridge` carries one exchange of a multiplexed session (HTTP/2) over a
  connection of a PING_PONG pool (HTTP/1.1): its own task, since an HTTP/1.1 upstream
  holds the connection for the whole exchange. The session sees it as the exchange's
  shared connection (``write``, ``abandon``).
- :class:`ReplyQueue` is the sink through which a one-at-a-time session (HTTP/1.1) waits
  for the reply events of an exchange it submitted to a shared connection (HTTP/2).

Flow control crosses the bridge through ``extensions["consumed"]`` (docs/http2.md):
body bytes are credited back to the side they came from only once the other side took
them, so neither direction buffers more than a window and a high-water mark.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import trio

from mesh.cluster import PingPongPool, UpstreamEndpoint, UpstreamError
from mesh.cluster.shared import ResponseSink
from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Data,
    Event,
    Headers,
    RemoteProtocolError,
    Reset,
    Status,
)
from mesh.net.connection import ConnectionBroken

if TYPE_CHECKING:
    from mesh.cluster.pool import UpstreamConnection

__all__ = ["BODY_IN_FLIGHT", "PingPongBridge", "ReplyQueue", "release_credit"]

#: Body bytes handed on but not yet taken by the receiving side, per exchange, before
#: the sender waits: what bounds memory when one side is slower than the other.
BODY_IN_FLIGHT = 1024 * 1024


class _Credits:
    """Bytes handed on and not yet consumed; a waiter wakes when they drop below the limit."""

    __slots__ = ("outstanding", "_wake")

    def __init__(self) -> None:
        self.outstanding = 0
        self._wake: trio.Event | None = None

    def __call__(self, size: int) -> None:
        self.outstanding -= size
        if self._wake is not None and self.outstanding < BODY_IN_FLIGHT:
            self._wake.set()

    def lend(self, event: Data) -> None:
        """Count ``event``'s payload until the receiving codec reports it consumed."""
        self.outstanding += len(event.payload)
        event.extensions["consumed"] = self

    def release_all(self) -> None:
        """The receiving side is gone: nothing will be consumed any more; stop waiting."""
        self.outstanding = 0
        if self._wake is not None:
            self._wake.set()

    async def wait(self) -> None:
        while self.outstanding >= BODY_IN_FLIGHT:
            self._wake = trio.Event()
            await self._wake.wait()
        self._wake = None


class PingPongBridge:
    """One multiplexed exchange over a PING_PONG upstream connection, in its own task."""

    #: calls the ``consumed`` callbacks of the Data it is given itself
    flow_controlled = True

    def __init__(self, sink: ResponseSink, request: Headers, pool: PingPongPool,
                 endpoint: UpstreamEndpoint) -> None:
        self.sink = sink
        self.request = request
        self.pool = pool
        self.endpoint = endpoint
        self._body: deque[Event] = deque()
        self._wake = trio.Event()
        self._scope = trio.CancelScope()
        self._credits = _Credits()
        self.closed = False

    # -- the session's side (same names as SharedConnection) ----------------------

    def write(self, event: Event) -> None:
        """A later event of the request (body, trailers, reset) from the client."""
        self._body.append(event)
        self._wake.set()

    def abandon(self, uid: int) -> None:
        """The exchange gave up (timeout, client gone): stop, and never reuse the connection."""
        self.closed = True
        self._scope.cancel()

    # -- the task ---------------------------------------------------------------

    async def run(self) -> None:
        with self._scope:
            try:
                upstream = await self.pool.acquire(self.endpoint)
            except UpstreamError as exc:
                self.sink.on_failure(exc.status, exc.reason)
                return
            reusable = False
            try:
                reusable = await self._exchange(upstream)
            except (ConnectionBroken, RemoteProtocolError) as exc:
                self.endpoint.record_failure()
                self.sink.on_failure(Status.UNAVAILABLE, f"upstream {self.endpoint.address}: {exc}")
            finally:
                self.pool.release(upstream, reusable and not self.closed)
        for event in self._body:  # never sent: hand their credit back all the same
            release_credit(event)

    async def _exchange(self, upstream: UpstreamConnection) -> bool:
        uc, uconn = upstream.codec, upstream.conn
        request = self.request
        uconn.write_buffers(uc.send(request))
        await uconn.flush()
        end = request.end_stream
        while not end:
            while not self._body:
                self._wake = trio.Event()
                await self._wake.wait()
            event = self._body.popleft()
            if type(event) is Reset:
                return False  # the client cancelled: this connection is mid-request
            uconn.write_buffers(uc.send(event))
            await uconn.flush()
            release_credit(event)
            end = event.end_stream
        while True:
            event = uc.next_event()
            if event is NEED_DATA:
                uc.receive_data(await uconn.recv())
                continue
            if event is CLOSED or event is PAUSED:
                raise ConnectionBroken("upstream closed the connection")
            if type(event) is Headers and event.extensions.get("informational"):
                continue
            if type(event) is Data:
                self._credits.lend(event)
            self.sink.on_event(event)
            if event.end_stream:
                return not uc.should_close
            await self._credits.wait()  # the client reads slower than the upstream sends


def release_credit(event: Event) -> None:
    """A Data event's payload was taken by a codec without flow control: say so."""
    if type(event) is Data:
        consumed = event.extensions.get("consumed")
        if consumed is not None:
            consumed(len(event.payload))


class ReplyQueue:
    """A ResponseSink a one-at-a-time session awaits (HTTP/1.1 client, HTTP/2 upstream)."""

    __slots__ = ("events", "failure", "_wake", "credits")

    def __init__(self) -> None:
        self.events: deque[Event] = deque()
        self.failure: UpstreamError | None = None
        self._wake = trio.Event()
        #: request body bytes written upstream and not yet framed by its codec
        self.credits = _Credits()

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        self._wake.set()

    def on_failure(self, status: Status, reason: str) -> None:
        self.failure = UpstreamError(status, reason)
        self._wake.set()
        self.credits.release_all()

    async def next(self) -> Event:
        """The next reply event; raises the UpstreamError the exchange failed with."""
        while not self.events:
            if self.failure is not None:
                raise self.failure
            self._wake = trio.Event()
            await self._wake.wait()
        return self.events.popleft()
