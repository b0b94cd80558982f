"""A multiplexed session's way back to its client: reply order, coalesced writes, backpressure.

PIPELINE codecs (Redis, memcached) must answer in request order even when the replies come
from different upstreams (sharding): each exchange's reply events wait in its ``held`` list
until every earlier exchange is done. MULTIPLEX codecs carry ids and are written as they come.
Writes are queued and marked dirty for mesh/net/flush.py; the writer task runs only when the
client stops reading (EAGAIN) or the session drains before closing.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import structlog
import trio

from mesh.codec import Buffers, CodecConnection, Data, Event, LocalProtocolError
from mesh.net.connection import Connection
from mesh.net.credits import OutputCredits
from mesh.net.flush import mark_dirty

__all__ = ["REPLIES_HIGH_WATER", "Ordered", "ReplyWriter"]

#: Queued replies past which a multiplexed session stops reading its client until the
#: client takes them (backpressure).
REPLIES_HIGH_WATER = 1024 * 1024

log = structlog.get_logger("mesh.proxy")


class Ordered(Protocol):
    """An exchange as the writer sees it: replies held for their turn, and whether it is done."""

    held: list[Event]
    done: bool


class ReplyWriter:
    __slots__ = ("conn", "cc", "ordered", "order", "dirty", "_wake", "_drained", "_credits",
                 "_held")

    def __init__(self, conn: Connection, cc: CodecConnection, ordered: bool) -> None:
        self.conn = conn
        self.cc = cc
        self.ordered = ordered
        self.order: deque[Ordered] = deque()  # exchanges not yet fully answered (PIPELINE)
        self.dirty = False  # queued output not yet sent (mesh/net/flush.py)
        self._wake = trio.Event()
        self._drained = trio.Event()
        #: the client codec has no flow control: Data counts as consumed once encoded
        self._credits = not getattr(cc, "flow_controlled", False)
        #: credit of body bytes framed for a client that reads slowly (mesh/net/credits.py)
        self._held = OutputCredits(conn)

    def track(self, exchange: Ordered) -> None:
        """A new exchange takes its place in the reply order."""
        if self.ordered:
            self.order.append(exchange)

    def emit(self, exchange: Ordered | None, events: list[Event]) -> None:
        """Reply events of ``exchange`` (None: not in the order, e.g. a heartbeat reply)."""
        if self.ordered and exchange is not None:
            exchange.held.extend(events)
            self._release_in_order()
            return
        self._write(events)

    def emit_one(self, exchange: Ordered, event: Event) -> None:
        """``emit(exchange, [event])`` for an exchange that ``event`` finished (done is set).

        The plain lane's reply (mesh/proxy/plain.py): at the head of the order, as it
        mostly is, written at once without passing through ``held``.
        """
        order = self.order
        if not self.ordered or not order or order[0] is not exchange:
            self.emit(exchange, [event])
            return
        order.popleft()
        try:
            self.conn.write_buffers(self.cc.send(event))
        except LocalProtocolError as exc:
            log.warning("send_failed", peer=self.conn.peer, error=str(exc))
            self.conn.abort()
            return
        if order and (order[0].done or order[0].held):
            self._release_in_order()
        if not self.dirty:
            mark_dirty(self)

    def _release_in_order(self) -> None:
        order = self.order
        while order:
            head = order[0]
            if head.held:
                self._write(head.held)
                head.held = []
            if not head.done:
                return
            order.popleft()

    def _write(self, events: list[Event]) -> None:
        cc, conn = self.cc, self.conn
        for event in events:
            if type(event) is Data and "consumed" in event.extensions:
                self._held.guard(event)
            try:
                conn.write_buffers(cc.send(event))
            except LocalProtocolError as exc:
                # a bug of ours or of a codec: this connection cannot go on, the worker can
                log.warning("send_failed", peer=conn.peer, error=str(exc))
                conn.abort()
                return
            if self._credits and type(event) is Data and "consumed" in event.extensions:
                event.extensions["consumed"](len(event.payload))
        if not self.dirty:
            mark_dirty(self)  # sent by the flusher next loop turn, with other writes

    def write_raw(self, data: Buffers) -> None:
        """Bytes the codec owes its peer outside any exchange (an HTTP/2 WINDOW_UPDATE)."""
        self.conn.write_buffers(data)
        if not self.dirty:
            mark_dirty(self)

    def flush_now(self) -> None:
        if not self.conn.closed and not self.conn.try_flush():
            self._wake.set()  # the client is slow: the writer waits for it
        self._held.release()

    async def drain(self) -> None:
        """Wait until the writer has handed every queued byte to the kernel."""
        while self.conn.pending_output and not self.conn.closed:
            self._drained = trio.Event()
            self._wake.set()
            await self._drained.wait()

    async def run(self) -> None:
        """The writer task: waits for a slow client to take what is queued."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.conn.flush()
            self._held.release()
            self._drained.set()
