"""An exchange in flight in a multiplexed session, and the flow-control credit it hands on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh.codec import Event, Status
from mesh.stream import Exchange

if TYPE_CHECKING:
    from mesh.cluster.shared import SharedConnection
    from mesh.proxy.bridge import PingPongBridge
    from mesh.proxy.fanout import FanoutJob
    from mesh.proxy.multiplex import MultiplexSession

__all__ = ["InFlight"]


class InFlight:
    """One exchange between request and last reply event; the upstream's sink."""

    __slots__ = ("session", "exchange", "downstream_id", "shared", "uid", "done", "held",
                 "deadline", "fanout")

    def __init__(self, session: MultiplexSession, exchange: Exchange) -> None:
        self.session = session
        self.exchange = exchange
        self.downstream_id = exchange.request.stream_id
        self.shared: SharedConnection | PingPongBridge | None = None
        self.uid = 0
        self.done = False
        self.held: list[Event] = []  # replies waiting for their turn (PIPELINE)
        self.deadline = 0.0  # monotonic time of the route timeout; 0 for none
        self.fanout: FanoutJob | None = None  # split across endpoints (Redis MGET...)

    def on_event(self, event: Event) -> None:
        event.stream_id = self.downstream_id
        self.session._reply(self, event)

    def on_failure(self, status: Status, reason: str) -> None:
        self.session._fail(self, status, reason)

    def on_merged(self, events: list[Event]) -> None:
        for event in events:
            self.session._reply(self, event)
