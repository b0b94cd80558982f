"""The plain lane: a PIPELINE codec's simplest requests forwarded without an exchange each.

A Redis GET or SET needs nothing from the proxy but the shard its key hashes to, yet the
general path builds a request head, an Exchange, routing keys and an InFlight for it, runs
the router and the filters, and a reply head on the way back: about 40 µs of Python per
command, the whole cost of a sharding proxy. twemproxy does the same job as: parse, hash,
append to the shard's connection; cut the reply, append to the client's.

A codec opts in with two optional hooks (see mesh/codec.py): the server role's
``next_plain()`` hands over the next request as ``(method, key, raw bytes)`` when it is complete
and needs no more than its shard (the codec decides: a known one-key command, no
transaction, authenticated...), and the client role's ``send_plain(id, raw)`` sends those
bytes under an upstream id. The lane runs only while the listener's routing cannot depend on
the request: one catch-all route to one cluster hashing on ``header:key``, and no filter that
acts on the codec. Otherwise, and for every request the codec does not call plain, the
general path runs; both keep one reply order per client.

What the lane keeps from the general path: the shard choice (the cluster's balancer, with
ejected endpoints skipped), the route timeout, per-endpoint failure counting, local error
replies in the codec's own format, and the listener/route/cluster request, response and
latency stats, and the access log line (method, route, cluster, upstream, outcome). What it
leaves out is what no plain request uses: request keys and filters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple

from mesh.cluster import UpstreamCluster, UpstreamEndpoint, UpstreamError
from mesh.cluster.shared import SharedConnection, SharedPool
from mesh.codec import Event, Headers, Status
from mesh.net.flush import in_flight
from mesh.stats import TrafficStats
from mesh.stream.exchange import status_class

if TYPE_CHECKING:
    from mesh.proxy.multiplex import MultiplexSession
    from mesh.router.table import CompiledRoute

__all__ = ["PlainCall", "PlainLane"]

#: the hash spec of a cluster that places requests by their (Redis/memcached) key
_KEY_SPEC = "header:key"


class _Target(NamedTuple):
    """Where the lane sends, and what it counts in, while the listener's routing stays so."""

    route: CompiledRoute
    cluster: UpstreamCluster
    pool: SharedPool
    scopes: tuple[TrafficStats, TrafficStats, TrafficStats]  # listener, route, cluster
    counts: TrafficStats  # ListenerRuntime.lane_stats: rendered into all three


class PlainCall:
    """One plain request between its send and its reply: the shared connection's sink, and
    the session's reply order's entry (``held``/``done``, as mesh/proxy/replies.py wants)."""

    __slots__ = ("lane", "held", "done", "start", "deadline", "endpoint", "shared", "uid",
                 "method")

    def __init__(self, lane: PlainLane, start: float, deadline: float,
                 endpoint: UpstreamEndpoint, method: bytes) -> None:
        self.lane = lane
        self.method = method  # for the access log
        self.held: list[Event] = []
        self.done = False
        self.start = start
        self.deadline = deadline  # monotonic time of the route timeout; 0 for none
        self.endpoint = endpoint
        self.shared: SharedConnection | None = None
        self.uid = 0

    def on_event(self, event: Event) -> None:
        self.lane.answer(self, event)

    def on_failure(self, status: Status, reason: str) -> None:
        self.lane.fail(self, status, reason)


class PlainLane:
    """The plain lane of one multiplexed session."""

    def __init__(self, session: MultiplexSession,
                 next_plain: Callable[[], tuple[bytes, bytes, bytes] | None]) -> None:
        self.session = session
        self._next_plain = next_plain
        #: plain calls sent and not yet answered
        self.pending = 0
        #: the last target found (a listener's routes and filters never change; a cluster
        #: may be replaced or lose its endpoints: checked on every use)
        self._last: _Target | None = None
        #: where the last batch went: its replies are counted and logged there
        self._sent_to: _Target | None = None

    def _target(self) -> _Target | None:
        """Where plain requests go now, or None when routing could depend on the request."""
        target = self._last
        if target is not None:  # the same as last time while its cluster is the same
            cluster = target.cluster
            if self.session.lr.clusters.get(cluster.name) is cluster and cluster.endpoints:
                return target
        target = self._last = self._find_target()
        return target

    def _find_target(self) -> _Target | None:
        session = self.session
        lr = session.lr
        if lr.filters.acts_on(session.codec.name):
            return None
        route = lr.routes.catch_all
        if route is None or len(route.clusters) != 1:
            return None
        cluster = lr.clusters.get(route.clusters[0])
        if (cluster is None or not cluster.endpoints or cluster.local is not None
                or (route.hash_key or cluster.hash_key) != _KEY_SPEC
                or lr.upstream_codec(session.codec, cluster) is not session.codec):
            return None
        pool = lr.pool_for(session.codec, cluster)
        if not isinstance(pool, SharedPool):
            return None
        return _Target(route, cluster, pool,
                       (lr.stats, lr.route_stats[route.name], lr.cluster_stats[cluster.name]),
                       lr.lane_stats(route.name, cluster.name))

    def forward(self) -> Coroutine[Any, Any, None] | None:
        """Forward the plain requests at the head of the session's input.

        Synchronous while every shard has a connection with room; a coroutine (to await
        before reading on) when one has to be opened first.
        """
        target = self._target()
        if target is None:
            return None
        plain = self._next_plain()
        if plain is None:
            return None
        self._sent_to = target
        pool, timeout = target.pool, target.route.timeout
        start = time.monotonic()
        deadline = start + timeout if timeout else 0.0
        pick = target.cluster.balancer.pick_key
        order = self.session.out.order
        count = 0
        waiting: Coroutine[Any, Any, None] | None = None
        try:
            while plain is not None:
                method, key, raw = plain
                endpoint = pick(key)
                call = PlainCall(self, start, deadline, endpoint, method)
                order.append(call)
                count += 1
                shared = pool.ready(endpoint)
                if shared is None:  # a connect is due: the rest of the input waits for it
                    waiting = self._connect_and_send(call, pool, raw)
                    break
                call.shared = shared
                endpoint.active_requests += 1
                call.uid = shared.submit_plain(raw, call)
                plain = self._next_plain()  # may raise on malformed input: counted first
        finally:
            self._started(target, count, deadline)
        return waiting

    def _started(self, target: _Target, count: int, deadline: float) -> None:
        target.counts.requests += count
        in_flight[0] += count
        self.pending += count
        session = self.session
        session.deadline = 0.0  # busy: never idle-expired while calls run
        if deadline:
            session.wake_timer()

    async def _connect_and_send(self, call: PlainCall, pool: SharedPool, raw: bytes) -> None:
        try:
            shared = await pool.acquire(call.endpoint)
        except UpstreamError as exc:
            self.fail(call, exc.status, exc.reason, record=False)
            return
        if not call.done:  # the client may have gone meanwhile
            call.shared = shared
            call.endpoint.active_requests += 1
            call.uid = shared.submit_plain(raw, call)

    def answer(self, call: PlainCall, event: Event) -> None:
        """The upstream's reply to ``call``."""
        if call.done:
            return
        call.endpoint.consecutive_failures = 0  # UpstreamEndpoint.record_success, inlined
        self._finish(call, status_class(event if type(event) is Headers else None))
        self.session.out.emit_one(call, event)

    def fail(self, call: PlainCall, status: Status, reason: str, record: bool = True) -> None:
        """``call`` failed (upstream gone, timeout, no connection): the codec's error reply."""
        if call.done:
            return
        if record:
            call.endpoint.record_failure()
        session = self.session
        target = self._sent_to
        if target is not None:
            listener, _, cluster = target.scopes
            listener.local_replies[status.name] = listener.local_replies.get(status.name, 0) + 1
            cluster.failures += 1
        message = f"{status.name}: {reason}"
        events = session.cc.local_reply(Headers(0, [], True, {}), status, message)
        response = next((e for e in events if type(e) is Headers), None)
        self._finish(call, status_class(response), status.name, reason)
        session.out.emit(call, events)

    def _finish(self, call: PlainCall, klass: str, local: str | None = None,
                failure: str | None = None) -> None:
        call.done = True
        in_flight[0] -= 1
        self.pending -= 1
        if call.shared is not None:
            call.endpoint.active_requests -= 1
        target = self._sent_to
        if target is not None:
            elapsed = time.monotonic() - call.start
            target.counts.response(klass, elapsed)
            lr = self.session.lr
            if lr.access_log:
                lr.log_access(self.session.conn.peer, call.method.upper().decode("latin-1"),
                              target.route.name, target.cluster.name, call.endpoint.address,
                              klass, elapsed, local_reply=local, failure=failure)
        if not self.pending:
            self.session.settle_if_idle()

    def expire(self, now: float) -> None:
        """Fail the calls whose route timeout passed (the session's timer calls this)."""
        due = [c for c in self.session.out.order
               if type(c) is PlainCall and not c.done and 0 < c.deadline <= now]
        for call in due:
            if call.shared is not None:
                call.shared.abandon(call.uid)
            timeout = self._sent_to.route.timeout if self._sent_to is not None else 0
            self.fail(call, Status.TIMEOUT, f"no response within {timeout:g}s")

    def abandon_all(self) -> None:
        """The client went away: drop every call still waiting for its reply."""
        for call in list(self.session.out.order):
            if type(call) is PlainCall and not call.done:
                if call.shared is not None:
                    call.shared.abandon(call.uid)
                self._finish(call, "none", failure="client went away")
