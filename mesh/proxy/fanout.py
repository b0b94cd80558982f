"""One downstream request split across upstream endpoints, and its replies merged.

A codec whose commands may name keys on several shards (Redis MGET, MSET, DEL...)
offers the optional server-role hook ``fan_out(request) -> Fanout | None``. The
core routes every part with the request's route (so the cluster's hash policy
places each key exactly as it would place a one-key request), groups the parts
by the endpoint they land on, sends each endpoint ONE request built by the codec
for its group, and hands the merged reply back to the multiplexed session as
the exchange's reply. Protocol knowledge stays in the codec; placement stays in
the cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from mesh.cluster import UpstreamEndpoint
from mesh.cluster.shared import SharedConnection, SharedPool
from mesh.codec import Event, Headers, Status

if TYPE_CHECKING:
    from mesh.codec import Codec
    from mesh.stream import Exchange

__all__ = ["Fanout", "FanoutJob"]


class Fanout(Protocol):
    """What a codec's ``fan_out`` returns: the parts of one request, and their merge."""

    #: how many parts the request splits into (each routed on its own)
    parts: int

    def part(self, index: int) -> Headers:
        """A request holding only part ``index``; its keys decide where the part goes."""

    def request(self, parts: list[int]) -> Headers:
        """One upstream request carrying ``parts`` (all bound to one endpoint)."""

    def collect(self, parts: list[int], reply: Headers) -> None:
        """Take the reply to ``request(parts)``."""

    def result(self) -> list[Event]:
        """The merged reply events (downstream stream id), once all parts are collected."""


class _Leg:
    """The sub-request to one endpoint; the shared connection's response sink."""

    __slots__ = ("job", "parts", "endpoint", "shared", "uid", "done")

    def __init__(self, job: FanoutJob, parts: list[int], endpoint: UpstreamEndpoint) -> None:
        self.job = job
        self.parts = parts
        self.endpoint = endpoint
        self.shared: SharedConnection | None = None
        self.uid = 0
        self.done = False

    def on_event(self, event: Event) -> None:
        self.job.on_reply(self, event)

    def on_failure(self, status: Status, reason: str) -> None:
        self.job.on_failure(self, status, reason)


class FanoutJob:
    """Sends the legs of one split request and calls back with the merged reply.

    ``reply(events)`` and ``fail(status, reason)`` are the session's callbacks;
    exactly one of them is called, once.
    """

    __slots__ = ("fanout", "legs", "waiting", "finished", "_reply", "_fail")

    def __init__(self, fanout: Fanout, reply: _Reply, fail: _Fail) -> None:
        self.fanout = fanout
        self.legs: list[_Leg] = []
        self.waiting = 0
        self.finished = False
        self._reply = reply
        self._fail = fail

    async def start(self, codec: Codec, pool: SharedPool, exchange: Exchange) -> None:
        """Route every part, then send one request per endpoint. Raises UpstreamError."""
        cluster, route, fanout = exchange.cluster, exchange.route, self.fanout
        assert cluster is not None and route is not None
        groups: dict[int, _Leg] = {}
        for index in range(fanout.parts):
            keys = codec.request_keys(fanout.part(index))
            endpoint = cluster.pick(keys, exchange.source_ip, route.hash_key)
            leg = groups.get(id(endpoint))
            if leg is None:
                leg = groups[id(endpoint)] = _Leg(self, [], endpoint)
                self.legs.append(leg)
            leg.parts.append(index)
        self.waiting = len(self.legs)
        try:
            for leg in self.legs:
                shared = await pool.acquire(leg.endpoint)
                if self.finished:  # timed out or failed while connecting
                    return
                leg.endpoint.active_requests += 1
                leg.shared = shared
                leg.uid = shared.submit(fanout.request(leg.parts), leg)
        except BaseException:
            self.abandon()
            raise

    def on_reply(self, leg: _Leg, event: Event) -> None:
        if self.finished or leg.done or type(event) is not Headers:
            return
        self._settle(leg)
        leg.endpoint.record_success()
        self.fanout.collect(leg.parts, event)
        self.waiting -= 1
        if self.waiting == 0:
            self.finished = True
            self._reply(self.fanout.result())

    def on_failure(self, leg: _Leg, status: Status, reason: str) -> None:
        if self.finished or leg.done:
            return
        self._settle(leg)
        leg.endpoint.record_failure()
        self.abandon()
        self._fail(status, reason)

    def abandon(self) -> None:
        """Give up every leg still waiting (timeout, failure, client gone)."""
        self.finished = True
        for leg in self.legs:
            if not leg.done:
                self._settle(leg)
                if leg.shared is not None:
                    leg.shared.abandon(leg.uid)

    @staticmethod
    def _settle(leg: _Leg) -> None:
        leg.done = True
        if leg.shared is not None:
            leg.endpoint.active_requests -= 1


class _Reply(Protocol):
    def __call__(self, events: list[Event]) -> None: ...


class _Fail(Protocol):
    def __call__(self, status: Status, reason: str) -> None: ...
