"""One downstream connection speaking a codec: the per-request phase machine.

For PING_PONG codecs (HTTP/1.1) an exchange runs inline in the connection's
own task: request head -> filters -> route -> cluster -> balancer -> pool ->
request out -> response back -> filters -> reply. No task per request, and
the response of a small exchange leaves in one coalesced send.

Every failure that the protocol can express becomes the codec's native
local reply; only what it cannot (a reset mid-body) closes the connection.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
import trio

from mesh.cluster import PingPongPool, UpstreamConnection, UpstreamError
from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Codec,
    CodecConnection,
    Data,
    Event,
    Headers,
    RemoteProtocolError,
    Role,
    Status,
    Trailers,
)
from mesh.net.connection import Connection, ConnectionBroken
from mesh.net.flush import in_flight
from mesh.net.relay import relay
from mesh.proxy.h2c import is_h2c, upgrade_to_h2
from mesh.proxy.routing import route_exchange
from mesh.proxy.to_shared import SharedExchange
from mesh.stream import Exchange

if TYPE_CHECKING:
    from mesh.proxy.listener import ListenerRuntime

__all__ = ["DownstreamSession", "ClientGone"]

log = structlog.get_logger("mesh.proxy")

#: Flush the downstream buffer once it holds this much, so a large response
#: is streamed with backpressure instead of being collected whole.
_HIGH_WATER = 256 * 1024
_MONOTONIC = time.monotonic



class ClientGone(Exception):
    """The downstream peer closed or broke its connection mid-exchange."""


class _UpstreamClosed(Exception):
    def __init__(self, reason: str, got_response: bool) -> None:
        super().__init__(reason)
        self.got_response = got_response


class DownstreamSession:
    """Serves one downstream connection with one codec."""

    __slots__ = ("lr", "conn", "codec", "cc", "_close_after", "_idle", "deadline",
                 "_upstream_wait", "timed_out")

    def __init__(self, runtime: ListenerRuntime, conn: Connection, codec: Codec) -> None:
        self.lr = runtime
        self.conn = conn
        self.codec = codec
        self.cc: CodecConnection = codec.connection(Role.SERVER, runtime.options)
        self._close_after = False
        self._idle = runtime.config.idle_timeout
        #: when the current wait gives up (see mesh.net.reaper); 0 for never
        self.deadline = 0.0
        #: the upstream connection being waited on, if the wait is upstream
        self._upstream_wait: Connection | None = None
        #: None while a response head is awaited, True once that wait expired
        self.timed_out: bool | None = False

    async def run(self, initial: bytes) -> None:
        if initial:
            self.cc.receive_data(initial)
        reaper = self.lr.reaper
        reaper.add(self)
        try:
            await self._serve()
        except RemoteProtocolError as exc:
            await self._refuse(exc)
        except (ClientGone, ConnectionBroken):
            pass
        finally:
            reaper.discard(self)
            self.conn.close()

    def expire(self) -> None:
        """Called by the reaper when ``deadline`` passes: close what we wait on.

        Waiting for a response head, only the upstream is closed, and the
        exchange is answered with a TIMEOUT local reply. Any other wait is
        an idle timeout: mid-body the exchange is dead, so both sides close;
        between requests the client is closed quietly, as Envoy does.
        """
        upstream = self._upstream_wait
        if upstream is not None:
            upstream.close()
            if self.timed_out is None:  # waiting for the response head
                self.timed_out = True
                return
        self.conn.close()

    def close_after_exchange(self) -> None:
        """The client connection ends after this exchange (part of its request is unread)."""
        self._close_after = True

    def _idle_deadline(self) -> None:
        self.deadline = _MONOTONIC() + self._idle if self._idle else 0.0

    async def _serve(self) -> None:
        cc, conn = self.cc, self.conn
        while True:
            event = cc.next_event()
            if event is NEED_DATA:
                self._idle_deadline()
                answered = conn.pending_output > 0
                if answered and not conn.flush_later():
                    await conn.flush()
                # Right after a reply, the client's next request is not there yet.
                cc.receive_data(await conn.recv(wait_first=answered))
                continue
            if event is CLOSED:
                await conn.flush()
                return
            if event is PAUSED:
                raise RuntimeError("codec paused although no exchange is in flight")
            if type(event) is Headers:
                if cc.is_heartbeat(event):
                    self._write_events(cc.heartbeat_reply(event))
                    continue
                if event.extensions.get("upgrade") is not None and is_h2c(self.lr, event):
                    await upgrade_to_h2(self, event)
                    return
                in_flight[0] += 1  # under load, output waits for the flusher's turn
                try:
                    await self._exchange(event)
                finally:
                    in_flight[0] -= 1
                if self._close_after or cc.should_close:
                    await conn.flush()
                    return
            # Data/Trailers of a request already answered locally are dropped.

    async def _refuse(self, exc: RemoteProtocolError) -> None:
        self.lr.stats.failures += 1
        log.info("bad_request", listener=self.lr.name, peer=self.conn.peer, error=str(exc))
        if exc.reply and not self.conn.closed:
            self.conn.write(exc.reply)
            with trio.move_on_after(1.0):
                try:
                    await self.conn.flush()
                except ConnectionBroken:
                    pass

    def _write_events(self, events: list[Event]) -> None:
        cc, conn = self.cc, self.conn
        for event in events:
            conn.write_buffers(cc.send(event))

    # -- one exchange ------------------------------------------------------

    async def _exchange(self, request: Headers) -> None:
        lr = self.lr
        lr.stats.requests += 1
        exchange = Exchange(lr.name, self.conn.peer, request, self.codec.request_keys(request),
                            _MONOTONIC())
        status = route_exchange(lr, exchange)
        if status is None:
            try:
                await self._forward(exchange)
            except UpstreamError as exc:
                exchange.upstream_failure = exc.reason
                if exchange.response is not None:
                    # The head went out already: HTTP/1 has no way to say
                    # "failed mid-body" but an abrupt close.
                    lr.finish(exchange)
                    self.conn.abort()
                    raise ClientGone(exc.reason) from None
                status = exc.status
        if status is not None:
            self._local_reply(exchange, status)
        lr.finish(exchange)

    def _local_reply(self, exchange: Exchange, status: Status) -> None:
        exchange.local_status = status
        message = f"{status.name}: {exchange.upstream_failure or status.name.lower()}"
        events = self.cc.local_reply(exchange.request, status, message)
        exchange.response = next((e for e in events if type(e) is Headers), None)
        self._write_events(events)
        if not exchange.request.end_stream:
            # The unread request body cannot be told from the next request.
            self._close_after = True

    async def _forward(self, exchange: Exchange) -> None:
        cluster = exchange.cluster
        route = exchange.route
        assert cluster is not None and route is not None
        endpoint = cluster.pick(exchange.keys, exchange.source_ip, route.hash_key)
        exchange.endpoint = endpoint
        pool = self.lr.pool_for(self.codec, cluster)
        endpoint.active_requests += 1
        if not isinstance(pool, PingPongPool):
            try:
                await SharedExchange(self, exchange, pool, endpoint).run()
            finally:
                endpoint.active_requests -= 1
            return
        try:
            # A bodiless request is retried on a fresh connection if a pooled one
            # turns out stale, so only requests with a body pay for the liveness peek.
            upstream = pool.take_idle(endpoint, not exchange.request.end_stream)
            if upstream is None:
                upstream = await pool.open(endpoint)
            reusable = False
            try:
                reusable = await self._through(exchange, upstream, retry_ok=upstream.requests > 0)
            except _UpstreamClosed as exc:
                if exc.got_response or not exchange.request.end_stream or upstream.requests == 0:
                    raise self._upstream_failed(exchange, str(exc)) from None
                # A pooled keep-alive connection the upstream had closed: one fresh try.
                pool.release(upstream, False)
                upstream = await pool.acquire(endpoint)
                try:
                    reusable = await self._through(exchange, upstream, retry_ok=False)
                except _UpstreamClosed as again:
                    raise self._upstream_failed(exchange, str(again)) from None
            finally:
                pool.release(upstream, reusable)
        finally:
            endpoint.active_requests -= 1

    def _upstream_failed(self, exchange: Exchange, reason: str) -> UpstreamError:
        assert exchange.endpoint is not None
        exchange.endpoint.record_failure()
        return UpstreamError(Status.UNAVAILABLE, f"upstream {exchange.endpoint.address}: {reason}")

    async def _through(self, exchange: Exchange, upstream: UpstreamConnection,
                       retry_ok: bool) -> bool:
        """Send the request upstream and relay the response; True if reusable."""
        request = exchange.request
        uc, uconn = upstream.codec, upstream.conn
        uconn.write_buffers(uc.send(request))
        try:
            if not request.end_stream:
                await uconn.flush()
                await self._request_body(request, uc, uconn)
            elif not uconn.flush_later():  # sent with other sessions' requests this turn
                await uconn.flush()
        except ConnectionBroken as exc:
            raise _UpstreamClosed(str(exc), False) from None
        response = await self._response_head(exchange, upstream)
        upstream.endpoint.consecutive_failures = 0  # a success resets passive health
        if response.extensions.get("upgrade") is True:
            await self._tunnel(uc, uconn)  # 101 to an Upgrade, 2xx to a CONNECT
            return False
        if not response.end_stream:
            await self._response_body(uc, uconn)
        return not uc.should_close

    async def _tunnel(self, uc: CodecConnection, uconn: Connection) -> None:
        """After a protocol switch both sides are opaque: relay bytes until either closes.

        Bytes each codec read past the switch (``trailing_data``) go first. The
        listener's idle timeout applies to the tunnel as a whole (nothing moved either way).
        """
        self.deadline = 0.0
        self._close_after = True
        early_down = bytes(getattr(self.cc, "trailing_data", b""))
        early_up = bytes(getattr(uc, "trailing_data", b""))
        if early_up:
            self.conn.write(early_up)
        await self.conn.flush()
        try:
            await relay(self.conn, uconn, early_down, self.lr.config.idle_timeout, self.lr.reaper)
        except ConnectionBroken:
            pass

    async def _request_body(self, request: Headers, uc: CodecConnection,
                            uconn: Connection) -> None:
        """Stream the request body upstream, one read at a time (backpressure)."""
        self._upstream_wait = uconn  # an idle client mid-body ends both sides
        try:
            await self._pump_request_body(request, uc, uconn)
        finally:
            self._upstream_wait = None

    async def _pump_request_body(self, request: Headers, uc: CodecConnection,
                                 uconn: Connection) -> None:
        if request.extensions.get("expect_continue"):
            self._write_events([Headers(request.stream_id, [(b":status", b"100")], False,
                                        {"informational": True})])
            await self.conn.flush()
        cc = self.cc
        while True:
            event = cc.next_event()
            if event is NEED_DATA:
                self._idle_deadline()
                data = await self.conn.recv()
                if not data:
                    raise ClientGone("client closed mid-request")
                cc.receive_data(data)
                continue
            if type(event) is Data or type(event) is Trailers:
                uconn.write_buffers(uc.send(event))
                await uconn.flush()
                if event.end_stream:
                    return
            elif event is CLOSED:
                raise ClientGone("client closed mid-request")

    async def _response_head(self, exchange: Exchange, upstream: UpstreamConnection) -> Headers:
        """Wait (under the route timeout) for the final response head."""
        route = exchange.route
        assert route is not None
        self.deadline = _MONOTONIC() + route.timeout if route.timeout else 0.0
        self._upstream_wait = upstream.conn
        self.timed_out = None
        try:
            while True:
                event = await self._upstream_event(upstream.codec, upstream.conn, False)
                if type(event) is not Headers:
                    raise self._upstream_failed(exchange, f"unexpected {type(event).__name__}")
                if event.extensions.get("informational"):
                    continue  # 1xx from upstream: 100-continue is answered by the proxy
                exchange.response = event
                for hook in self.lr.filters.response:
                    hook(exchange)
                self.conn.write_buffers(self.cc.send(event))
                return event
        except _UpstreamClosed:
            if not self.timed_out:
                raise
            upstream.endpoint.record_failure()
            raise UpstreamError(Status.TIMEOUT, f"no response within {route.timeout:g}s") from None
        finally:
            self._upstream_wait = None
            self.timed_out = False

    async def _response_body(self, uc: CodecConnection, uconn: Connection) -> None:
        conn, cc = self.conn, self.cc
        self._upstream_wait = uconn  # a stalled upstream body ends at the idle timeout
        try:
            while True:
                # The rest of a small body usually came with the head: take the
                # events already decoded without a coroutine call per event.
                try:
                    event = uc.next_event()
                except RemoteProtocolError as exc:
                    raise _UpstreamClosed(f"bad response: {exc}", True) from None
                if event is NEED_DATA or event is CLOSED or event is PAUSED:
                    self._idle_deadline()
                    if conn.pending_output > _HIGH_WATER:
                        await conn.flush()
                    event = await self._upstream_event(uc, uconn, True, event)
                conn.write_buffers(cc.send(event))
                if event.end_stream:
                    return
        finally:
            self._upstream_wait = None

    async def _upstream_event(self, uc: CodecConnection, uconn: Connection,
                              got_response: bool, event: object = None) -> Event:
        """The next upstream event, reading as needed; ``event`` is one already pulled."""
        while True:
            if event is None:
                try:
                    event = uc.next_event()
                except RemoteProtocolError as exc:
                    raise _UpstreamClosed(f"bad response: {exc}", got_response) from None
            if event is NEED_DATA:
                event = None
                try:
                    data = await uconn.recv(wait_first=not got_response)
                except ConnectionBroken as exc:
                    raise _UpstreamClosed(str(exc), got_response) from None
                uc.receive_data(data)
                continue
            if event is CLOSED or event is PAUSED:
                raise _UpstreamClosed("upstream closed the connection", got_response)
            return event  # type: ignore[return-value]

