"""A multiplexed session's input handled in the poller's turn, without waking its task.

While a session's read loop waits for input, ``mesh.net.poller.wait_input`` offers each read
edge to :meth:`InputTurn.on_input` first, in the poller's own task: it reads the socket and
forwards what it can synchronously (plain-lane requests, and requests whose upstream
connection has room: ``MultiplexSession.start`` needs no wait then). Only what needs the
session's task (a connect, a split across endpoints, a request body, a heartbeat, the end of
input, an error, backpressure) wakes it, with that thing left in ``handoff``. A task switch
per request was most of the trio overhead left on this path (Redis unpipelined 13-16k ->
22-28k commands/s per core).

Not for codecs with connection-level flow control or stream resets (HTTP/2): their
follow-up events and credits stay in the task.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import trio

from mesh.codec import NEED_DATA, Headers, NextEvent
from mesh.net import poller
from mesh.net.connection import RECV_SIZE, ConnectionBroken
from mesh.proxy.replies import REPLIES_HIGH_WATER

if TYPE_CHECKING:
    from mesh.proxy.multiplex import MultiplexSession

__all__ = ["InputTurn"]


class InputTurn:
    """The poller-turn input path of one multiplexed session."""

    def __init__(self, session: MultiplexSession) -> None:
        self.session = session
        #: what ``on_input`` left for the read loop: the next event, a coroutine to await
        #: (a connect or a split), or an error to raise
        self.handoff: NextEvent | Coroutine[Any, Any, None] | Exception | None = None

    async def wait_input(self) -> None:
        """The read loop's wait for input while its buffer is empty."""
        try:
            await poller.wait_input(self.session.conn.sock, self.on_input)
        except trio.ClosedResourceError:
            raise ConnectionBroken("closed while waiting to read") from None

    def on_input(self) -> bool:
        """Read and forward in the poller's turn; False wakes the read loop for the rest.

        What it queues is sent once the poller has offered every ready socket of its poll
        (``end_of_batch`` there): clients that sent in the same turn share the upstream send.
        """
        session = self.session
        conn, cc, lane = session.conn, session.cc, session.lane
        try:
            while True:
                data = conn.sock.recv(RECV_SIZE)
                cc.receive_data(data)
                if not data:
                    return False  # the read loop sees CLOSED
                while True:
                    if lane is not None and (waiting := lane.forward()) is not None:
                        self.handoff = waiting
                        return False
                    event = cc.next_event()
                    if event is NEED_DATA:
                        break
                    if type(event) is not Headers or cc.is_heartbeat(event):
                        self.handoff = event  # the read loop's business
                        return False
                    waiting = session.start(event)
                    if waiting is not None:
                        self.handoff = waiting
                        return False
                if len(data) < RECV_SIZE:  # the socket is empty: the next edge is new input
                    return conn.pending_output <= REPLIES_HIGH_WATER  # else the loop drains
        except BlockingIOError:
            return True
        except OSError as exc:
            self.handoff = ConnectionBroken(str(exc))
            return False
        except Exception as exc:  # RemoteProtocolError, or a bug: raised in the task, as there
            self.handoff = exc
            return False

    async def take_handoff(self) -> NextEvent | None:
        """What ``on_input`` left: the event to go on with, or None once a wait is done."""
        handoff, self.handoff = self.handoff, None
        if isinstance(handoff, Exception):
            raise handoff
        if isinstance(handoff, Coroutine):
            await handoff
            return None
        return handoff
