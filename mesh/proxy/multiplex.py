"""Downstream sessions for MULTIPLEX and PIPELINE codecs (Dubbo, Thrift, Redis, HTTP/2).

Requests are read and forwarded without waiting for earlier replies; replies
arrive from the shared upstream connections' reader tasks through
:class:`InFlight` sinks. No task per request: one reader (this session's
loop), one writer and one timer task per downstream connection. The way back
to the client (reply order for PIPELINE codecs, coalesced writes) is
mesh/proxy/replies.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import structlog
import trio

from mesh.cluster import UpstreamEndpoint, UpstreamError
from mesh.cluster.shared import SharedConnection, SharedPool
from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Codec,
    CodecConnection,
    Event,
    Headers,
    PoolMode,
    RemoteProtocolError,
    Reset,
    Role,
    Status,
)
from mesh.net.connection import RECV_SIZE, Connection, ConnectionBroken
from mesh.net.flush import end_of_batch, in_flight
from mesh.net.reaper import TICK
from mesh.proxy.dedicated import DedicatedLinks
from mesh.proxy.fanout import Fanout, FanoutJob
from mesh.proxy.inflight import InFlight
from mesh.proxy.input_turn import InputTurn
from mesh.proxy.plain import PlainLane
from mesh.proxy.replies import REPLIES_HIGH_WATER, ReplyWriter
from mesh.proxy.routing import route_exchange
from mesh.proxy.streams import StreamEvents, refused
from mesh.stream import Exchange

if TYPE_CHECKING:
    from mesh.proxy.listener import ListenerRuntime

__all__ = ["MultiplexSession"]

log = structlog.get_logger("mesh.proxy")

_INTERNAL_ERROR = 2  # HTTP/2 RST_STREAM code for an exchange that failed mid-reply
#: How long a client that stopped sending still waits for replies owed to it
#: (exchanges without a route timeout could otherwise hold the connection forever).
_SETTLE_LIMIT = 60.0


class MultiplexSession(StreamEvents):
    def __init__(self, runtime: ListenerRuntime, conn: Connection, codec: Codec,
                 cc: CodecConnection | None = None) -> None:
        self.lr = runtime
        self.conn = conn
        self.codec = codec
        # ``cc`` is given when another session handed the connection over (h2c upgrade)
        self.cc = cc if cc is not None else codec.connection(Role.SERVER, runtime.options)
        #: optional codec hook: received Data is credited back to the client when taken
        self._acknowledge = getattr(self.cc, "acknowledge", None)
        #: the codec can end one exchange with a Reset instead of closing the connection
        self._resets = bool(getattr(self.cc, "resets_streams", False))
        self._nursery: trio.Nursery | None = None
        #: optional codec hook: requests the proxy answers itself (Redis PING, HELLO...)
        self._local_answer = getattr(self.cc, "local_answer", None)
        #: optional codec hook: requests split across shards (Redis MGET, MSET, DEL...)
        self._fan_out = getattr(self.cc, "fan_out", None)
        #: optional codec hook: requests forwarded by their key alone (Redis GET, SET...)
        plain = getattr(self.cc, "next_plain", None) if codec.pool_mode is PoolMode.PIPELINE else None
        self.lane = PlainLane(self, plain) if plain is not None else None
        #: input forwarded in the poller's turn; not with flow control or stream resets
        self._turn = None if self._acknowledge or self._resets else InputTurn(self)
        self.active: dict[int, InFlight] = {}
        self.out = ReplyWriter(conn, self.cc, codec.pool_mode is PoolMode.PIPELINE)
        self._wake_timer = trio.Event()
        self._settled = trio.Event()
        self._idle = runtime.config.idle_timeout or math.inf
        #: this client's own upstream connections (blocking commands); made in run()
        self._links: DedicatedLinks | None = None
        #: when an idle client is let go (mesh.net.reaper sweeps it); 0 while exchanges run
        self.deadline = 0.0

    async def run(self, initial: bytes) -> None:
        if initial:
            self.cc.receive_data(initial)
        self.lr.reaper.add(self)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._links = DedicatedLinks(nursery)
                nursery.start_soon(self.out.run)
                nursery.start_soon(self._timer)
                error: RemoteProtocolError | None = None
                try:
                    await self._read_loop()
                except RemoteProtocolError as exc:
                    log.info("bad_request", listener=self.lr.name, peer=self.conn.peer,
                             error=str(exc))
                    error = exc
                # The client stopped sending (EOF, QUIT, bad bytes): the replies
                # still owed to it go out first, in order, then any error reply.
                with trio.move_on_after(_SETTLE_LIMIT):
                    await self._settle()
                if error is not None and error.reply:
                    self.conn.write(error.reply)
                await self.out.drain()
                nursery.cancel_scope.cancel()
        except ConnectionBroken:
            pass
        finally:
            self.lr.reaper.discard(self)
            if self._links is not None:
                self._links.close()
            self._abandon_all()
            self.conn.close()

    def expire(self) -> None:
        """The reaper's call: idle past ``idle_timeout`` with nothing in flight, let it go."""
        if not self._busy:
            self.conn.close()  # wakes the read loop's recv with ConnectionBroken

    async def _read_loop(self) -> None:
        cc, conn, lane, turn = self.cc, self.conn, self.lane, self._turn
        drained = False  # the last recv was short: the socket is empty, wait before reading
        while True:
            if turn is not None and turn.handoff is not None:  # left by on_input for this task
                event = await turn.take_handoff()
                if event is None:
                    continue
            else:
                if lane is not None and (waiting := lane.forward()) is not None:  # a connect
                    await waiting
                event = cc.next_event()
            if event is NEED_DATA:
                if conn.pending_output > REPLIES_HIGH_WATER:
                    await self.out.drain()  # backpressure: the client is not reading
                if not self._busy and self._idle < math.inf:
                    self.deadline = time.monotonic() + self._idle
                try:
                    end_of_batch()
                    if turn is not None and drained and not conn.stalled:
                        await turn.wait_input()  # requests are forwarded in the poller's turn
                        drained = False
                        continue
                    data = await conn.recv(wait_first=drained)
                except ConnectionBroken:
                    if conn.closed:
                        return  # let go by the reaper: idle
                    raise
                drained = len(data) < RECV_SIZE
                cc.receive_data(data)
                continue
            if event is CLOSED or event is PAUSED:
                return
            if type(event) is Headers:
                if cc.is_heartbeat(event):
                    self.out.emit(None, cc.heartbeat_reply(event))
                else:
                    waiting = self.start(event)
                    if waiting is not None:  # a connect, or a split across endpoints
                        await waiting
                continue
            self._follow_up(event)

    async def _settle(self) -> None:
        """Wait until every exchange in flight has been answered (each has a deadline)."""
        while self._busy and not self.conn.closed:
            self._settled = trio.Event()
            await self._settled.wait()

    # -- exchanges -----------------------------------------------------------

    def start(self, request: Headers) -> Coroutine[Any, Any, None] | None:
        """Answer, refuse or forward ``request``; a coroutine when that has to wait.

        Synchronous as long as no wait is needed (an upstream connection with room is
        there): a coroutine per request costs more than the rest of the forwarding.
        """
        lr = self.lr
        lr.stats.requests += 1
        self.deadline = 0.0  # busy: never idle-expired while exchanges run
        exchange = Exchange(lr.name, self.conn.peer, request, self.codec.request_keys(request),
                            time.monotonic())
        inflight = InFlight(self, exchange)
        self.active[inflight.downstream_id] = inflight
        in_flight[0] += 1
        self.out.track(inflight)
        if self._local_answer is not None:
            answer: list[Event] | None = self._local_answer(request)
            if answer is not None:
                exchange.response = answer[0] if type(answer[0]) is Headers else None
                self._finish(inflight)
                self.out.emit(inflight, answer)
                return None
        status = route_exchange(lr, exchange)
        if status is None:
            try:
                return self._forward(inflight)
            except UpstreamError as exc:
                exchange.upstream_failure = exc.reason
                status = exc.status
        self._local_reply(inflight, status)
        return None

    def _forward(self, inflight: InFlight) -> Coroutine[Any, Any, None] | None:
        exchange = inflight.exchange
        cluster, route = exchange.cluster, exchange.route
        assert cluster is not None and route is not None
        # a codec may send this connection's requests to other pools (Redis after HELLO 3)
        codec = getattr(self.cc, "upstream_codec", None) or self.codec
        if exchange.request.extensions.get("dedicated"):
            endpoint = exchange.endpoint = cluster.pick(exchange.keys, exchange.source_ip,
                                                        route.hash_key)
            return self._forward_dedicated(inflight, codec, endpoint)
        pool = self.lr.pool_for(codec, cluster)
        if not isinstance(pool, SharedPool):
            self._bridge(inflight, pool)
            return None
        if self._fan_out is not None and (route.hash_key or cluster.hash_key):
            fanout = self._fan_out(exchange.request)
            if fanout is not None:
                return self._forward_split(inflight, fanout, pool)
        endpoint = cluster.pick(exchange.keys, exchange.source_ip, route.hash_key)
        exchange.endpoint = endpoint
        shared = pool.ready(endpoint)
        if shared is None:
            return self._connect_and_submit(inflight, pool, endpoint)
        self._submit(inflight, shared)
        return None

    def _submit(self, inflight: InFlight, shared: SharedConnection) -> None:
        exchange = inflight.exchange
        assert exchange.endpoint is not None and exchange.route is not None
        exchange.endpoint.active_requests += 1
        inflight.shared = shared
        if exchange.request.extensions.get("oneway"):
            self._forward_oneway(inflight, shared)
            return
        inflight.uid = shared.submit(exchange.request, inflight)
        inflight.arm_deadline()

    async def _forward_dedicated(self, inflight: InFlight, codec: Codec,
                                 endpoint: UpstreamEndpoint) -> None:
        """A request that may hold its connection (Redis BLPOP): the client's own connection."""
        cluster = inflight.exchange.cluster
        assert self._links is not None and cluster is not None
        try:
            await self._links.send(codec, self.lr.options, endpoint, cluster.config.connect_timeout,
                                   inflight.exchange.request, inflight)
        except UpstreamError as exc:
            self._upstream_failed(inflight, exc)

    async def _connect_and_submit(self, inflight: InFlight, pool: SharedPool,
                                  endpoint: UpstreamEndpoint) -> None:
        try:
            shared = await pool.acquire(endpoint)
        except UpstreamError as exc:
            self._upstream_failed(inflight, exc)
            return
        if not inflight.done:  # the client may have gone meanwhile
            self._submit(inflight, shared)

    async def _forward_split(self, inflight: InFlight, fanout: Fanout, pool: SharedPool) -> None:
        job = inflight.fanout = FanoutJob(fanout, inflight.on_merged, inflight.on_failure)
        route = inflight.exchange.route
        if route is not None and route.timeout:
            inflight.deadline = time.monotonic() + route.timeout
            self._wake_timer.set()
        try:
            await job.start(self.codec, pool, inflight.exchange)
        except UpstreamError as exc:
            self._upstream_failed(inflight, exc)

    def _upstream_failed(self, inflight: InFlight, exc: UpstreamError) -> None:
        if not inflight.done:
            inflight.exchange.upstream_failure = exc.reason
            self._local_reply(inflight, exc.status)

    def _forward_oneway(self, inflight: InFlight, shared: SharedConnection) -> None:
        """A request that gets no reply (``extensions["oneway"]``, Thrift oneway calls).

        Written upstream under a fresh id and finished at once: no pending sink on
        the shared connection, no deadline, nothing ever sent downstream for it.
        """
        shared.send_oneway(inflight.exchange.request)
        self._finish(inflight)
        self.out.emit(inflight, [])

    def _reply(self, inflight: InFlight, event: Event) -> None:
        if inflight.done:
            return
        exchange = inflight.exchange
        if type(event) is Headers and exchange.response is None:
            exchange.response = event
            for hook in self.lr.filters.response:
                hook(exchange)
        elif isinstance(event, Reset):
            if exchange.response is None and refused(event) and self._retry(inflight):
                return
            self._fail(inflight, Status.UNAVAILABLE,
                       f"upstream reset the stream (HTTP/2 error {event.error_code})")
            return
        if event.end_stream:
            self._finish(inflight)
            if exchange.endpoint is not None:
                exchange.endpoint.record_success()
        self.out.emit(inflight, [event])

    def _fail(self, inflight: InFlight, status: Status, reason: str) -> None:
        if inflight.done:
            return
        inflight.exchange.upstream_failure = reason
        if inflight.exchange.endpoint is not None:
            inflight.exchange.endpoint.record_failure()
        if inflight.exchange.response is not None:
            self._finish(inflight)
            if self._resets:  # HTTP/2: only this stream ends
                self.out.emit(inflight, [Reset(inflight.downstream_id, _INTERNAL_ERROR)])
            else:
                self.conn.abort()  # mid-reply: nothing native left to say
            return
        self._local_reply(inflight, status)

    def _local_reply(self, inflight: InFlight, status: Status) -> None:
        exchange = inflight.exchange
        exchange.local_status = status
        if exchange.request.extensions.get("oneway"):  # no reply can carry the error
            self._finish(inflight)
            self.out.emit(inflight, [])
            return
        message = f"{status.name}: {exchange.upstream_failure or status.name.lower()}"
        events = self.cc.local_reply(exchange.request, status, message)
        exchange.response = next((e for e in events if type(e) is Headers), None)
        self._finish(inflight)
        self.out.emit(inflight, events)

    def _finish(self, inflight: InFlight) -> None:
        inflight.done = True
        in_flight[0] -= 1
        self.active.pop(inflight.downstream_id, None)
        if not self.active:
            self.settle_if_idle()
        exchange = inflight.exchange
        if inflight.shared is not None and exchange.endpoint is not None:
            exchange.endpoint.active_requests -= 1
        self.lr.finish(exchange)

    @property
    def _busy(self) -> bool:
        """Exchanges or plain-lane calls still wait for replies."""
        return bool(self.active) or (self.lane is not None and self.lane.pending > 0)

    def settle_if_idle(self) -> None:
        """Exchanges or plain calls just ran out: settled, and idle, if the other kind did too."""
        if not self._busy:
            self._settled.set()
            if self._idle < math.inf:
                self.deadline = time.monotonic() + self._idle

    def wake_timer(self) -> None:
        self._wake_timer.set()

    # -- timeouts ------------------------------------------------------------

    async def _timer(self) -> None:
        """Sweep the exchanges in flight every TICK for expired deadlines: a heap entry
        per request would keep finished exchanges alive until their deadline, and the
        garbage collector then pauses the worker for hundreds of milliseconds."""
        while True:
            if not self._busy:
                await self._wake_timer.wait()
                self._wake_timer = trio.Event()
                continue
            await trio.sleep(TICK)
            now = time.monotonic()
            for inflight in [i for i in self.active.values() if 0 < i.deadline <= now]:
                inflight.expire()
            if self.lane is not None:
                self.lane.expire(now)
            end_of_batch()

    def _abandon_all(self) -> None:
        if self.lane is not None:
            self.lane.abandon_all()
        for inflight in list(self.active.values()):
            inflight.abandon()
        self.active.clear()

