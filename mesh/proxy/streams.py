"""The streaming side of a multiplexed session (HTTP/2): a request's later events, client
resets, flow-control credit, requests an upstream refused unprocessed, and exchanges bridged
to a one-at-a-time upstream (HTTP/1.1).

A mixin of ``MultiplexSession``, split out to keep the session readable; it uses the
session's state, declared here for the type checker.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import trio

from mesh.cluster import PingPongPool, UpstreamError
from mesh.codec import Buffers, Data, Event, Reset
from mesh.net.connection import Connection
from mesh.net.credits import Credit
from mesh.proxy.bridge import PingPongBridge, release_credit
from mesh.proxy.inflight import InFlight
from mesh.proxy.replies import ReplyWriter

__all__ = ["StreamEvents", "refused"]

_REFUSED_STREAM = 7  # HTTP/2: the upstream did not process the request; safe to send again


class StreamEvents:
    conn: Connection
    out: ReplyWriter
    active: dict[int, InFlight]
    _acknowledge: Callable[[int, int], Buffers] | None
    _nursery: trio.Nursery | None

    def _finish(self, inflight: InFlight) -> None:
        raise NotImplementedError  # MultiplexSession's

    def _forward(self, inflight: InFlight) -> Coroutine[Any, Any, None] | None:
        raise NotImplementedError  # MultiplexSession's

    def _upstream_failed(self, inflight: InFlight, exc: UpstreamError) -> None:
        raise NotImplementedError  # MultiplexSession's

    def _bridge(self, inflight: InFlight, pool: PingPongPool) -> None:
        """An exchange to a one-at-a-time upstream (HTTP/2 client, HTTP/1.1 server)."""
        exchange = inflight.exchange
        cluster, route = exchange.cluster, exchange.route
        assert cluster is not None and route is not None and self._nursery is not None
        endpoint = exchange.endpoint = cluster.pick(exchange.keys, exchange.source_ip,
                                                    route.hash_key)
        endpoint.active_requests += 1
        bridge = inflight.shared = PingPongBridge(inflight, exchange.request, pool, endpoint)
        inflight.arm_deadline()
        self._nursery.start_soon(bridge.run)

    def _follow_up(self, event: Event) -> None:
        """A request's later event (body, trailers, reset): on to its upstream, or dropped."""
        inflight = self.active.get(event.stream_id)
        shared = inflight.shared if inflight is not None else None
        if type(event) is Data and self._acknowledge is not None:
            size = event.extensions.get("flow", 0)
            if shared is None:
                self.acknowledge(event.stream_id, size)  # dropped: credit it now
            elif size:
                event.extensions["consumed"] = Credit(self, event.stream_id)
        if shared is None or inflight is None:
            return
        if type(event) is Reset:
            self._client_reset(inflight, event)
            return
        event.stream_id = inflight.uid
        shared.write(event)
        if type(event) is Data and not getattr(shared, "flow_controlled", False):
            release_credit(event)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Credit the client's window for ``size`` bytes of ``stream_id`` it sent (Creditor)."""
        assert self._acknowledge is not None
        if size and not self.conn.closed:
            self.out.write_raw(self._acknowledge(stream_id, size))

    def _client_reset(self, inflight: InFlight, event: Reset) -> None:
        """The client cancelled one exchange (RST_STREAM): cancel it upstream too."""
        shared = inflight.shared
        assert shared is not None
        if not inflight.done:
            shared.abandon(inflight.uid)  # an HTTP/2 upstream gets RST_STREAM(CANCEL)
            inflight.exchange.upstream_failure = "client reset the stream"
            self._finish(inflight)

    def _retry(self, inflight: InFlight) -> bool:
        """Send again a request the upstream refused unprocessed (HTTP/2 REFUSED_STREAM,
        or above a GOAWAY's last stream id: RFC 9113 8.7), once, if it had no body."""
        exchange = inflight.exchange
        if exchange.request.extensions.get("retried") or not exchange.request.end_stream:
            return False
        exchange.request.extensions["retried"] = True
        if exchange.endpoint is not None:
            exchange.endpoint.active_requests -= 1
        inflight.shared = None
        try:
            waiting = self._forward(inflight)
        except UpstreamError as exc:
            self._upstream_failed(inflight, exc)
            return True
        if waiting is not None and self._nursery is not None:
            self._nursery.start_soon(_run, waiting)
        return True


def refused(event: Reset) -> bool:
    return event.error_code == _REFUSED_STREAM or bool(event.extensions.get("refused"))


async def _run(waiting: Coroutine[Any, Any, None]) -> None:
    await waiting
