"""An exchange in flight in a multiplexed session, and the flow-control credit it hands on."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mesh.codec import Event, Status
from mesh.net.flush import in_flight
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

    def arm_deadline(self) -> None:
        """The route timeout, or the client's own deadline (gRPC ``grpc-timeout``) if sooner."""
        exchange = self.exchange
        assert exchange.route is not None
        timeout = exchange.route.timeout
        asked = exchange.request.extensions.get("timeout")
        if asked is not None and (not timeout or asked < timeout):
            timeout = asked
        if timeout:
            self.deadline = time.monotonic() + timeout
            self.session.wake_timer()

    def expire(self) -> None:
        """The route timeout passed (the session's timer calls this)."""
        exchange = self.exchange
        if self.done or exchange.response is not None:
            return
        if self.shared is not None:
            self.shared.abandon(self.uid)
        if self.fanout is not None:
            self.fanout.abandon()
        timeout = exchange.route.timeout if exchange.route else 0
        self.session._fail(self, Status.TIMEOUT, f"no response within {timeout:g}s")

    def abandon(self) -> None:
        """The client went away: nobody waits for the reply any more."""
        if self.shared is not None:
            self.shared.abandon(self.uid)
        if self.fanout is not None:
            self.fanout.abandon()
        if not self.done:
            self.done = True
            in_flight[0] -= 1
            exchange = self.exchange
            exchange.upstream_failure = exchange.upstream_failure or "client went away"
            if self.shared is not None and exchange.endpoint is not None:
                exchange.endpoint.active_requests -= 1
            self.session.lr.finish(exchange)
