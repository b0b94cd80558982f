"""An exchange of a one-at-a-time session (HTTP/1.1 client) on a shared upstream (HTTP/2).

The request goes out as a stream of the shared connection; the session's task waits for
the reply events in a :class:`ReplyQueue`. Both bodies stream with backpressure: the
client is read only while the upstream codec takes what it was given (its window), and
the upstream's window reopens only as the client's socket takes the response.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

import trio

from mesh.cluster import UpstreamEndpoint, UpstreamError
from mesh.cluster.shared import SharedConnection, SharedPool
from mesh.codec import CLOSED, NEED_DATA, Data, Event, Headers, Reset, Status, Trailers
from mesh.proxy.bridge import ReplyQueue, release_credit
from mesh.stream import Exchange

if TYPE_CHECKING:
    from mesh.proxy.session import DownstreamSession

__all__ = ["SharedExchange"]

T = TypeVar("T")

#: Flush the client's buffer once it holds this much (as mesh/proxy/session.py does).
_HIGH_WATER = 256 * 1024
_REFUSED_STREAM = 7


class SharedExchange:
    """Runs one exchange of ``session`` through ``pool`` to ``endpoint``."""

    def __init__(self, session: DownstreamSession, exchange: Exchange, pool: SharedPool,
                 endpoint: UpstreamEndpoint) -> None:
        self.session = session
        self.exchange = exchange
        self.pool = pool
        self.endpoint = endpoint
        self.sink = ReplyQueue()
        idle = session.lr.config.idle_timeout
        self._idle = idle if idle else math.inf

    async def run(self) -> None:
        request = self.exchange.request
        # A bodiless request the upstream refused unprocessed (REFUSED_STREAM, or past
        # a GOAWAY) is sent once more, on a connection with room (RFC 9113 8.7).
        for attempt in (1, 2):
            shared = self.pool.ready(self.endpoint) or await self.pool.acquire(self.endpoint)
            uid = shared.submit(request, self.sink)
            finished = False
            try:
                if not request.end_stream:
                    await self._request_body(shared, uid)
                head = await self._head(retry=attempt == 1 and request.end_stream)
                if head is None:
                    self.sink = ReplyQueue()
                    continue
                finished = True
            finally:
                if not finished:
                    shared.abandon(uid)  # HTTP/2: RST_STREAM, the upstream stops working on it
            await self._response(head)
            return

    async def _request_body(self, shared: SharedConnection, uid: int) -> None:
        session = self.session
        cc, conn = session.cc, session.conn
        request = self.exchange.request
        if request.extensions.get("expect_continue"):
            conn.write_buffers(cc.send(Headers(request.stream_id, [(b":status", b"100")], False,
                                               {"informational": True})))
            await conn.flush()
        credits = self.sink.credits
        while True:
            event = cc.next_event()
            if event is NEED_DATA:
                data = await self._within_idle(conn.recv())
                if not data:
                    raise _client_gone()
                cc.receive_data(data)
                continue
            if event is CLOSED:
                raise _client_gone()
            if type(event) is not Data and type(event) is not Trailers:
                continue
            event.stream_id = uid
            if type(event) is Data and shared.flow_controlled:
                credits.lend(event)
            shared.write(event)
            if type(event) is Data and not shared.flow_controlled:
                release_credit(event)
            if event.end_stream:
                return
            if self.sink.failure is not None or self.sink.events:
                # The upstream answered (or failed) before the body ended: the rest of
                # the body cannot be told from a next request, so the client is closed after.
                session.close_after_exchange()
                return
            await self._within_idle(credits.wait())

    async def _head(self, retry: bool) -> Headers | None:
        """The response head; None when the upstream refused the stream and ``retry``."""
        route = self.exchange.route
        timeout = route.timeout if route is not None and route.timeout else math.inf
        with trio.move_on_after(timeout):
            while True:
                event = await self.sink.next()
                if type(event) is Headers:
                    return event
                if type(event) is Reset:
                    if retry and (event.error_code == _REFUSED_STREAM
                                  or event.extensions.get("refused")):
                        return None
                    self.endpoint.record_failure()
                    raise UpstreamError(Status.UNAVAILABLE, f"upstream {self.endpoint.address} "
                                        f"reset the stream (HTTP/2 error {event.error_code})")
        self.endpoint.record_failure()
        raise UpstreamError(Status.TIMEOUT, f"no response within {timeout:g}s")

    async def _response(self, head: Headers) -> None:
        session, exchange = self.session, self.exchange
        cc, conn = session.cc, session.conn
        exchange.response = head
        for hook in session.lr.filters.response:
            hook(exchange)
        conn.write_buffers(cc.send(head))
        self.endpoint.consecutive_failures = 0
        if head.end_stream:
            return
        while True:
            event: Event = await self._within_idle(self.sink.next())
            if type(event) is Reset:
                raise UpstreamError(Status.UNAVAILABLE, "upstream reset the stream mid-response")
            conn.write_buffers(cc.send(event))
            if conn.pending_output > _HIGH_WATER:
                await conn.flush()
            release_credit(event)  # taken by the client's socket: the upstream may send more
            if event.end_stream:
                return

    async def _within_idle(self, waiting: Awaitable[T]) -> T:
        """Await ``waiting`` for at most the listener's idle timeout."""
        with trio.move_on_after(self._idle):
            return await waiting
        raise UpstreamError(Status.TIMEOUT, "idle timeout mid-exchange")


def _client_gone() -> Exception:
    from mesh.proxy.session import ClientGone

    return ClientGone("client closed mid-request")
