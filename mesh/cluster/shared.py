"""Shared upstream connections for MULTIPLEX and PIPELINE codecs.

Many exchanges, from many downstream connections, travel on one upstream
connection. Each request gets a fresh upstream request id (the pool rewrites
``stream_id`` before ``send``; a MULTIPLEX codec writes it into the frame, so
clients that all use id 0, like Python Thrift clients, never collide). A
PIPELINE codec's client side answers with the id of the request each reply
belongs to, in send order, so both modes are matched by id here.

Each shared connection has one reader task (replies to exchanges) and one
writer task: exchanges only append to the output buffer, and everything
written in one scheduler turn leaves in one ``sendmsg`` (write coalescing
across clients, the trick that makes twemproxy fast).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog
import trio

from mesh.cluster.endpoint import UpstreamEndpoint
from mesh.cluster.pool import UpstreamError, connect_endpoint
from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Codec,
    CodecConnection,
    ConnectionOptions,
    Data,
    Event,
    Headers,
    PoolMode,
    RemoteProtocolError,
    Reset,
    Role,
    Status,
)
from mesh.net.connection import RECV_SIZE, Connection, ConnectionBroken
from mesh.net.credits import Credit, OutputCredits
from mesh.net.flush import end_of_batch, mark_dirty
from mesh.net.poller import wait_input

__all__ = ["ResponseSink", "SharedConnection", "SharedPool"]

log = structlog.get_logger("mesh.cluster")

_MAX_ID = 2**31 - 1
_CANCEL = 8  # the HTTP/2 error code of RST_STREAM for an exchange nobody waits for


class ResponseSink(Protocol):
    """Receives the reply events of one exchange (ids still upstream ids)."""

    def on_event(self, event: Event) -> None: ...

    def on_failure(self, status: Status, reason: str) -> None: ...


class _Discard:
    """Stands in for an exchange that gave up; its late reply is read and dropped."""

    def on_event(self, event: Event) -> None:
        pass

    def on_failure(self, status: Status, reason: str) -> None:
        pass


_DISCARD = _Discard()


def _no_plain(uid: int, raw: bytes) -> bytes:
    raise RuntimeError("this codec has no plain lane (send_plain)")


class SharedConnection:
    """One upstream connection carrying many exchanges at once."""

    def __init__(self, conn: Connection, cc: CodecConnection, endpoint: UpstreamEndpoint,
                 mode: PoolMode, max_in_flight: int) -> None:
        self.conn = conn
        self.cc = cc
        self.endpoint = endpoint
        self.mode = mode
        self.max_in_flight = max_in_flight
        self.pending: dict[int, ResponseSink] = {}
        self.closed = False
        self.draining = False
        self._next_id = 1
        self._wake = trio.Event()
        self.dirty = False  # queued output not yet sent (mesh/net/flush.py)
        #: how many more exchanges the peer admits now (HTTP/2 MAX_CONCURRENT_STREAMS)
        self._capacity = getattr(cc, "stream_capacity", None)
        #: the codec credits received Data back to the peer when told (HTTP/2 windows)
        self._acknowledge = getattr(cc, "acknowledge", None)
        self._resets = bool(getattr(cc, "resets_streams", False))
        #: the codec calls the ``consumed`` callbacks of the Data it is given (HTTP/2)
        self.flow_controlled = bool(getattr(cc, "flow_controlled", False))
        self._held = OutputCredits(conn)
        #: the codec's plain-lane send (Redis), if it has one
        self._send_plain: Callable[[int, bytes], bytes] = getattr(cc, "send_plain", _no_plain)
        #: why the connection ends, found by ``_on_input`` for the reader task
        self._ending: str | None = None

    @property
    def has_room(self) -> bool:
        if self.closed or self.draining or len(self.pending) >= self.max_in_flight:
            return False
        return self._capacity is None or self._capacity() > 0

    def submit(self, request: Headers, sink: ResponseSink) -> int:
        """Send a request head under a fresh upstream id; returns that id."""
        uid = self.send_oneway(request)
        self.pending[uid] = sink
        return uid

    def send_oneway(self, request: Headers) -> int:
        """Send a request that gets no reply (``extensions["oneway"]``); nothing stays pending."""
        uid = self._next_id
        self._next_id = 1 if uid >= _MAX_ID else uid + 1
        self.write(Headers(uid, request.fields, request.end_stream, request.extensions))
        return uid

    def submit_plain(self, raw: bytes, sink: ResponseSink) -> int:
        """Send a plain-lane request (mesh/proxy/plain.py) as its raw bytes; returns its id.

        The codec's optional ``send_plain(stream_id, raw)`` records the id (replies of a
        PIPELINE codec are matched to ids in send order) and returns the bytes to send.
        """
        uid = self._next_id
        self._next_id = 1 if uid >= _MAX_ID else uid + 1
        self.conn.write(self._send_plain(uid, raw))
        self.pending[uid] = sink
        if not self.dirty:
            mark_dirty(self)
        return uid

    def write(self, event: Event) -> None:
        """Queue an event (head, body, reset) already carrying its upstream id."""
        if type(event) is Data and "consumed" in event.extensions:
            self._held.guard(event)  # the upstream may read slower than its window says
        self.conn.write_buffers(self.cc.send(event))
        if not self.dirty:
            mark_dirty(self)  # sent by the flusher next loop turn, with other writes

    def flush_now(self) -> None:
        if not self.conn.closed and not self.conn.try_flush():
            self._wake.set()  # the upstream is slow: the writer waits for it
        self._held.release()

    def abandon(self, uid: int) -> None:
        """An exchange gave up (timeout, client gone); keep order for PIPELINE."""
        if uid in self.pending:
            if self.mode is PoolMode.PIPELINE:
                self.pending[uid] = _DISCARD
            else:
                del self.pending[uid]
                if self._resets and not self.closed:
                    self.write(Reset(uid, _CANCEL))  # HTTP/2: the upstream stops working on it

    async def run(self) -> None:
        """Reader and writer until the connection ends; then fail what is pending."""
        reason = "upstream closed the connection"
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                reason = await self._reader()
                nursery.cancel_scope.cancel()
        except ConnectionBroken as exc:
            reason = str(exc)
        finally:
            self._close(reason)

    async def _writer(self) -> None:
        conn = self.conn
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await conn.flush()
            self._held.release()

    async def _reader(self) -> str:
        cc, conn = self.cc, self.conn
        drained = False  # the last recv was short: the socket is empty, wait before reading
        while True:
            reason = self._ending or self._take_replies()
            if reason is not None:
                return reason
            end_of_batch()
            if drained and not conn.stalled:
                try:  # replies are taken in the poller's turn while they keep coming
                    await wait_input(conn.sock, self._on_input)
                except trio.ClosedResourceError:
                    raise ConnectionBroken("closed while waiting to read") from None
                drained = False
                continue
            data = await conn.recv()
            drained = len(data) < RECV_SIZE
            cc.receive_data(data)

    def _on_input(self) -> bool:
        """Replies for the waiting reader, in the poller's turn (mesh/net/poller.py): taken
        right here, without a task switch; False wakes the reader (end, error)."""
        try:
            while True:
                data = self.conn.sock.recv(RECV_SIZE)
                self.cc.receive_data(data)
                if not data:
                    return False  # the reader sees CLOSED
                self._ending = self._take_replies()
                if self._ending is not None:
                    return False
                if len(data) < RECV_SIZE:
                    return True
        except BlockingIOError:
            return True
        except OSError as exc:
            self._ending = f"upstream connection failed: {exc}"
            return False
        except Exception as exc:  # a bug in a sink: end this connection, not the worker
            log.exception("reply_delivery_failed", upstream=self.endpoint.address)
            self._ending = f"proxy internal error: {exc!r}"
            return False

    def _take_replies(self) -> str | None:
        """Hand every complete reply event to its sink; a reason when the connection ends."""
        cc, pending = self.cc, self.pending
        while True:
            try:
                event = cc.next_event()
            except RemoteProtocolError as exc:
                return f"bad reply from upstream: {exc}"
            if event is NEED_DATA:
                return None
            if event is CLOSED or event is PAUSED:
                return "upstream closed the connection"
            if cc.is_heartbeat(event):
                for reply in cc.heartbeat_reply(event):
                    self.write(reply)
                extensions = event.extensions
                if extensions.get("draining"):
                    self.draining = True  # no new exchanges; those in flight finish
                    if not extensions.get("control"):  # an HTTP/2 GOAWAY ends one connection
                        self.endpoint.drain()
                continue
            sink = pending.get(event.stream_id)
            if self._acknowledge is not None and type(event) is Data:
                self._credit(event, sink is not None)
            if sink is None:
                continue  # a late reply to an exchange that timed out
            if event.end_stream:
                del pending[event.stream_id]
            sink.on_event(event)

    def _credit(self, event: Data, delivered: bool) -> None:
        """Flow control: the peer's window for ``event`` reopens once the data moved on."""
        size = event.extensions.get("flow", 0)
        if not delivered:
            self.acknowledge(event.stream_id, size)  # dropped: credit it now
        elif size:
            event.extensions["consumed"] = Credit(self, event.stream_id)

    def acknowledge(self, uid: int, size: int) -> None:
        assert self._acknowledge is not None
        if not self.closed:
            self.conn.write_buffers(self._acknowledge(uid, size))
            if not self.dirty:
                mark_dirty(self)

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.conn.close()
        pending, self.pending = self.pending, {}
        for sink in pending.values():
            sink.on_failure(Status.UNAVAILABLE, f"upstream {self.endpoint.address}: {reason}")
        end_of_batch()  # the local replies just made for those exchanges


class SharedPool:
    """Shared connections per endpoint; a new one opens when all are full."""

    def __init__(self, codec: Codec, options: ConnectionOptions, nursery: trio.Nursery,
                 connect_timeout: float, max_connections: int, max_in_flight: int) -> None:
        self._codec = codec
        self._options = options
        self._nursery = nursery
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._max_in_flight = max_in_flight
        self._connections: dict[UpstreamEndpoint, list[SharedConnection]] = {}
        self._opening: dict[UpstreamEndpoint, trio.Event] = {}
        self._failed: dict[UpstreamEndpoint, UpstreamError] = {}
        self.open_connections = 0
        self.connects = 0
        self.connect_failures = 0

    def ready(self, endpoint: UpstreamEndpoint) -> SharedConnection | None:
        """A connection to ``endpoint`` with room now, without waiting; None if a connect is due."""
        conns = self._connections.get(endpoint)
        if conns:
            for shared in conns:
                if shared.has_room:
                    return shared
        return None

    async def acquire(self, endpoint: UpstreamEndpoint) -> SharedConnection:
        conns = self._connections.setdefault(endpoint, [])
        while True:
            ready = self.ready(endpoint)
            if ready is not None:
                return ready
            opening = self._opening.get(endpoint)
            if opening is None:
                break
            await opening.wait()  # one connect at a time per endpoint; then look again
            if endpoint in self._failed:
                raise self._failed[endpoint]
        conns[:] = [c for c in conns if not c.closed]
        if self.open_connections >= self._max_connections:
            raise UpstreamError(Status.OVERLOADED, "upstream connection limit reached")
        done = self._opening[endpoint] = trio.Event()
        self._failed.pop(endpoint, None)
        try:
            shared = await self._open(endpoint)
        except UpstreamError as exc:
            self._failed[endpoint] = exc  # callers that waited on this connect share its fate
            raise
        finally:
            del self._opening[endpoint]
            done.set()
        conns.append(shared)
        return shared

    async def _open(self, endpoint: UpstreamEndpoint) -> SharedConnection:
        self.connects += 1
        try:
            conn = await connect_endpoint(endpoint, self._connect_timeout)
        except UpstreamError:
            self.connect_failures += 1
            raise
        shared = SharedConnection(conn, self._codec.connection(Role.CLIENT, self._options),
                                  endpoint, self._codec.pool_mode, self._max_in_flight)
        self.open_connections += 1
        endpoint.open_connections += 1
        self._nursery.start_soon(self._serve, shared)
        return shared

    async def _serve(self, shared: SharedConnection) -> None:
        try:
            await shared.run()
        finally:
            self.open_connections -= 1
            shared.endpoint.open_connections -= 1

    def close(self) -> None:
        for conns in self._connections.values():
            for shared in conns:
                shared._close("proxy shutting down")
