"""A small xDS management server for tests: ADS, state of the world (grpcio + xds-protos).

Real gRPC (grpcio's server on a thread pool) speaking
``envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources`` with
xds-protos' generated messages, so the client under test (Envoy, rpcmesh) talks to somebody
else's HTTP/2 and gRPC stack.

The server holds one snapshot per type URL: a version string and a list of resources (as
``google.protobuf.Any``), and optionally one per (node id, type URL) that the streams of that
node get instead (``set_snapshot(..., node_id=...)``: two data planes on one control plane
need listeners on different ports). It sends a stream the current snapshot of a type

- when the stream asks for the type for the first time, or changes its resource names;
- whenever :meth:`AdsServer.set_snapshot` changes that type's version;

and never twice the same version to the same subscription (an ACK or a NACK of the current
version gets no answer, as in go-control-plane). A response carries only the resources the
stream subscribed to by name; an empty name list means all of them for LDS and CDS (wildcard)
and nothing for the other types. Every response has a fresh nonce. A request whose
``response_nonce`` is not the last nonce sent for its type is stale (it answers an older
response) and changes nothing, as the xDS protocol says.

Every request is recorded per node id (the node is only required in a stream's first
request; later ones inherit it) as an :class:`XdsRequest`, every response as an
:class:`XdsResponse`, so a test can check ACKs and NACKs::

    server = AdsServer()
    port = server.start()                     # 127.0.0.1, a free port
    server.set_snapshot(EDS_TYPE, "1", [cla])  # messages or Any
    ack = server.wait_request("envoy-test", lambda r: r.is_ack_of(EDS_TYPE, "1"), timeout=10)
    server.stop()                             # grace 1 s, then streams are cancelled

Builders for the resources of a small HTTP mesh: :func:`static_cluster`, :func:`eds_cluster`,
:func:`http_listener` (HTTP connection manager, RDS over ADS), :func:`route_configuration`.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

__all__ = [
    "CDS_TYPE", "EDS_TYPE", "LDS_TYPE", "RDS_TYPE", "AdsServer", "Route", "XdsRequest",
    "XdsResponse", "cluster_load_assignment", "eds_cluster", "http_listener",
    "route_configuration", "static_cluster",
]

_PREFIX = "type.googleapis.com/"
LDS_TYPE = _PREFIX + "envoy.config.listener.v3.Listener"
CDS_TYPE = _PREFIX + "envoy.config.cluster.v3.Cluster"
RDS_TYPE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
EDS_TYPE = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
#: types whose empty resource_names subscription means "every resource" (wildcard)
WILDCARD_TYPES = frozenset({LDS_TYPE, CDS_TYPE})
STOP_GRACE = 1.0


@dataclass(frozen=True)
class XdsRequest:
    """One DiscoveryRequest as the server received it."""

    node_id: str
    type_url: str
    version_info: str
    response_nonce: str
    resource_names: tuple[str, ...]
    error_detail: str | None  #: error_detail.message of a NACK; None when no error_detail
    error_code: int | None
    stream: int  #: which stream (1, 2, ... in the order they were opened)
    at: float = field(default_factory=time.monotonic)

    @property
    def is_nack(self) -> bool:
        return self.error_detail is not None

    def is_ack_of(self, type_url: str, version: str, nonce: str | None = None) -> bool:
        """An ACK of ``version`` of ``type_url`` (of the response ``nonce`` when given)."""
        return (self.type_url == type_url and self.version_info == version
                and not self.is_nack and bool(self.response_nonce)
                and (nonce is None or self.response_nonce == nonce))


@dataclass(frozen=True)
class XdsResponse:
    """One DiscoveryResponse the server sent."""

    node_id: str
    type_url: str
    version_info: str
    nonce: str
    resource_names: tuple[str, ...]
    stream: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Snapshot:
    version: str
    resources: list[tuple[str, any_pb2.Any]]  # (name, resource)


@dataclass
class _Subscription:
    names: tuple[str, ...] = ()
    sent_version: str | None = None
    sent_names: tuple[str, ...] | None = None
    last_nonce: str = ""


_END = object()


def cluster_load_assignment(cluster_name: str, endpoints: Sequence[tuple[Any, ...]], *,
                            weight: int | None = None, **locality: str
                            ) -> endpoint_pb2.ClusterLoadAssignment:
    """A ClusterLoadAssignment of one locality (``region=``, ``zone=``, ``sub_zone=``) at
    priority 0: one lb_endpoint per ``(address, port)`` or ``(address, port, health_status)``
    (envoy.config.core.v3.HealthStatus: 0 UNKNOWN, 1 HEALTHY, 2 UNHEALTHY...), each with
    ``load_balancing_weight`` ``weight`` when given."""
    from envoy.config.core.v3 import base_pb2

    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    group = cla.endpoints.add()
    if locality:
        group.locality.CopyFrom(base_pb2.Locality(**locality))
    for address, port, *health in endpoints:
        lb = group.lb_endpoints.add()
        lb.endpoint.address.socket_address.address = address
        lb.endpoint.address.socket_address.port_value = port
        if health:
            lb.health_status = health[0]
        if weight is not None:
            lb.load_balancing_weight.value = weight
    return cla


def static_cluster(name: str, endpoints: Sequence[tuple[str, int]], *,
                   connect_timeout: float = 1.0) -> Message:
    """A Cluster of type STATIC whose load_assignment holds ``endpoints`` ((address, port))."""
    from envoy.config.cluster.v3 import cluster_pb2

    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    cluster.connect_timeout.FromNanoseconds(int(connect_timeout * 1e9))
    cluster.load_assignment.CopyFrom(cluster_load_assignment(name, endpoints))
    return cluster


def eds_cluster(name: str, *, service_name: str | None = None,
                connect_timeout: float = 1.0) -> Message:
    """A Cluster of type EDS whose endpoints come over ADS (``eds_config: {ads: {}}``), as
    the ClusterLoadAssignment ``service_name`` (the cluster's name when not given)."""
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.core.v3 import config_source_pb2

    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    cluster.connect_timeout.FromNanoseconds(int(connect_timeout * 1e9))
    cluster.eds_cluster_config.eds_config.ads.SetInParent()
    cluster.eds_cluster_config.eds_config.resource_api_version = config_source_pb2.V3
    if service_name:
        cluster.eds_cluster_config.service_name = service_name
    return cluster


def http_listener(name: str, host: str, port: int, route_config_name: str) -> Message:
    """A Listener on ``host:port``: one filter chain, an HTTP connection manager (codec AUTO,
    the router filter) taking route configuration ``route_config_name`` by RDS over ADS."""
    from envoy.config.core.v3 import config_source_pb2
    from envoy.config.listener.v3 import listener_pb2
    from envoy.extensions.filters.http.router.v3 import router_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import (
        http_connection_manager_pb2 as hcm_pb2,
    )

    manager = hcm_pb2.HttpConnectionManager(stat_prefix=name,
                                            codec_type=hcm_pb2.HttpConnectionManager.AUTO)
    manager.rds.route_config_name = route_config_name
    manager.rds.config_source.ads.SetInParent()
    manager.rds.config_source.resource_api_version = config_source_pb2.V3
    router = manager.http_filters.add(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router())
    listener = listener_pb2.Listener(name=name)
    listener.address.socket_address.address = host
    listener.address.socket_address.port_value = port
    network_filter = listener.filter_chains.add().filters.add(
        name="envoy.filters.network.http_connection_manager")
    network_filter.typed_config.Pack(manager)
    return listener


@dataclass(frozen=True)
class Route:
    """One route of :func:`route_configuration`: requests whose path starts with ``prefix``
    go to ``cluster``, or are shared by ``weighted`` ((cluster, weight), ...); the matched
    prefix is replaced by ``prefix_rewrite`` when given."""

    prefix: str
    cluster: str | None = None
    weighted: tuple[tuple[str, int], ...] = ()
    prefix_rewrite: str | None = None
    timeout: float | None = 3.0


def route_configuration(name: str, routes: Sequence[Route], *, domains: Sequence[str] = ("*",),
                        virtual_host: str = "all") -> Message:
    """A RouteConfiguration with one virtual host (``domains``) holding ``routes`` in order."""
    from envoy.config.route.v3 import route_pb2

    config = route_pb2.RouteConfiguration(name=name)
    host = config.virtual_hosts.add(name=virtual_host, domains=list(domains))
    for spec in routes:
        route = host.routes.add()
        route.match.prefix = spec.prefix
        if spec.weighted:
            for cluster, weight in spec.weighted:
                share = route.route.weighted_clusters.clusters.add(name=cluster)
                share.weight.value = weight
        else:
            assert spec.cluster, spec
            route.route.cluster = spec.cluster
        if spec.prefix_rewrite is not None:
            route.route.prefix_rewrite = spec.prefix_rewrite
        if spec.timeout is not None:
            route.route.timeout.FromNanoseconds(int(spec.timeout * 1e9))
    return config


def _message_of(resource: any_pb2.Any) -> Message:
    name = resource.TypeName()
    cls = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))
    msg = cls()
    resource.Unpack(msg)
    return msg


def resource_name(resource: Message | any_pb2.Any) -> str:
    """The xDS name of a resource: ``cluster_name`` of a ClusterLoadAssignment, else ``name``."""
    msg = _message_of(resource) if isinstance(resource, any_pb2.Any) else resource
    if msg.DESCRIPTOR.full_name == "envoy.config.endpoint.v3.ClusterLoadAssignment":
        return str(msg.cluster_name)
    return str(msg.name)


class _Stream:
    def __init__(self, number: int) -> None:
        self.number = number
        self.node_id = ""
        self.events: queue.Queue[Any] = queue.Queue()
        self.subs: dict[str, _Subscription] = {}


class _Servicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, server: AdsServer) -> None:
        self.server = server

    def StreamAggregatedResources(  # noqa: N802 (the gRPC method name)
            self, request_iterator: Iterator[discovery_pb2.DiscoveryRequest],
            context: grpc.ServicerContext) -> Iterator[discovery_pb2.DiscoveryResponse]:
        return self.server._serve_stream(request_iterator, context)


class AdsServer:
    """ADS (state of the world) on 127.0.0.1; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", max_workers: int = 16) -> None:
        self.host = host
        self.port = 0
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._lock = threading.Condition()
        self._snapshots: dict[str, _Snapshot] = {}
        self._node_snapshots: dict[tuple[str, str], _Snapshot] = {}  # (node id, type URL)
        self._streams: set[_Stream] = set()
        self._stream_numbers = itertools.count(1)
        self._nonces = itertools.count(1)
        self._requests: list[XdsRequest] = []
        self._responses: list[XdsResponse] = []
        self.errors: list[str] = []  #: exceptions raised in stream handlers (should stay empty)

    # ---------------------------------------------------------------------------- control

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, port: int = 0) -> int:
        """Listen on ``port`` (0: a free one); returns the port."""
        assert self._server is None, "already started"
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers,
                                                        thread_name_prefix="ads"),
                             options=[("grpc.so_reuseport", 0)])
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_Servicer(self), server)
        bound = server.add_insecure_port(f"{self.host}:{port}")
        if not bound:
            raise OSError(f"ADS server cannot listen on {self.host}:{port}")
        server.start()
        self._server, self.port = server, bound
        return bound

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop: streams get ``grace`` seconds, then they are cancelled and the port closed."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop(grace).wait(grace + 5.0)
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.events.put(_END)

    @property
    def running(self) -> bool:
        return self._server is not None

    def set_snapshot(self, type_url: str, version: str,
                     resources: Sequence[Message | any_pb2.Any], *,
                     node_id: str | None = None) -> None:
        """Replace the snapshot of ``type_url``; every stream subscribed to it gets it.
        With ``node_id``: the snapshot of that node only, which its streams get instead of
        the shared one from now on."""
        packed: list[tuple[str, any_pb2.Any]] = []
        for resource in resources:
            if isinstance(resource, any_pb2.Any):
                item = resource
            else:
                item = any_pb2.Any()
                item.Pack(resource)
            if item.type_url != type_url:
                raise ValueError(f"a {item.type_url} resource in a {type_url} snapshot")
            packed.append((resource_name(resource), item))
        with self._lock:
            if node_id is None:
                self._snapshots[type_url] = _Snapshot(version, packed)
            else:
                self._node_snapshots[(node_id, type_url)] = _Snapshot(version, packed)
            streams = list(self._streams)
        for stream in streams:
            stream.events.put(("snapshot", type_url))

    def requests(self, node_id: str, type_url: str | None = None) -> list[XdsRequest]:
        """Every request received from ``node_id`` (of ``type_url``), oldest first."""
        with self._lock:
            return [r for r in self._requests
                    if r.node_id == node_id and type_url in (None, r.type_url)]

    def responses(self, node_id: str, type_url: str | None = None) -> list[XdsResponse]:
        """Every response sent to ``node_id`` (of ``type_url``), oldest first."""
        with self._lock:
            return [r for r in self._responses
                    if r.node_id == node_id and type_url in (None, r.type_url)]

    def streams(self, node_id: str | None = None) -> int:
        """How many streams are open (of ``node_id``)."""
        with self._lock:
            return sum(1 for s in self._streams if node_id in (None, s.node_id))

    def wait_request(self, node_id: str, predicate: Callable[[XdsRequest], bool],
                     timeout: float, *, since: int = 0) -> XdsRequest:
        """The first request from ``node_id`` (from index ``since`` of :meth:`requests`) that
        satisfies ``predicate``; waits up to ``timeout`` s, then raises TimeoutError listing
        what came."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                mine = [r for r in self._requests if r.node_id == node_id]
                for request in mine[since:]:
                    if predicate(request):
                        return request
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no matching request from node {node_id!r} within {timeout} s; got "
                        f"{mine[since:]}; sent {[r for r in self._responses if r.node_id == node_id]}")
                self._lock.wait(left)

    def wait_response(self, node_id: str, type_url: str, version: str,
                      timeout: float) -> XdsResponse:
        """The first response of ``version`` of ``type_url`` sent to ``node_id``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for response in self._responses:
                    if (response.node_id, response.type_url,
                            response.version_info) == (node_id, type_url, version):
                        return response
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {type_url} version {version!r} sent to {node_id!r} "
                                       f"within {timeout} s; requests: {self._requests}")
                self._lock.wait(left)

    # ---------------------------------------------------------------------------- streams

    def _serve_stream(self, request_iterator: Iterator[discovery_pb2.DiscoveryRequest],
                      context: grpc.ServicerContext
                      ) -> Iterator[discovery_pb2.DiscoveryResponse]:
        stream = _Stream(next(self._stream_numbers))
        with self._lock:
            self._streams.add(stream)
        context.add_callback(lambda: stream.events.put(_END))
        reader = threading.Thread(target=self._read, args=(request_iterator, stream),
                                  name=f"ads-read-{stream.number}", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    event = stream.events.get(timeout=0.5)
                except queue.Empty:
                    if not context.is_active():
                        return
                    continue
                if event is _END:
                    return
                try:
                    if isinstance(event, discovery_pb2.DiscoveryRequest):
                        responses = self._on_request(stream, event)
                    else:
                        responses = self._on_snapshot(stream, event[1])
                except Exception as exc:  # a bug here must show in the test, not hang it
                    with self._lock:
                        self.errors.append(f"stream {stream.number}: {exc!r}")
                    raise
                yield from responses
        finally:
            with self._lock:
                self._streams.discard(stream)

    @staticmethod
    def _read(request_iterator: Iterator[discovery_pb2.DiscoveryRequest],
              stream: _Stream) -> None:
        with contextlib.suppress(Exception):  # the RPC ended or was cancelled
            for request in request_iterator:
                stream.events.put(request)
        stream.events.put(_END)

    def _on_request(self, stream: _Stream, req: discovery_pb2.DiscoveryRequest
                    ) -> list[discovery_pb2.DiscoveryResponse]:
        if req.node.id:
            stream.node_id = req.node.id
        nack = req.HasField("error_detail")
        record = XdsRequest(
            node_id=stream.node_id, type_url=req.type_url, version_info=req.version_info,
            response_nonce=req.response_nonce, resource_names=tuple(req.resource_names),
            error_detail=req.error_detail.message if nack else None,
            error_code=req.error_detail.code if nack else None, stream=stream.number)
        with self._lock:
            self._requests.append(record)
            self._lock.notify_all()
            sub = stream.subs.setdefault(req.type_url, _Subscription())
            if req.response_nonce and req.response_nonce != sub.last_nonce:
                return []  # stale: answers a response older than the last one sent
            sub.names = tuple(sorted(req.resource_names))
            return self._due(stream, req.type_url, sub)

    def _on_snapshot(self, stream: _Stream, type_url: str
                     ) -> list[discovery_pb2.DiscoveryResponse]:
        with self._lock:
            sub = stream.subs.get(type_url)
            if sub is None:
                return []  # the stream never asked for this type
            return self._due(stream, type_url, sub)

    def _due(self, stream: _Stream, type_url: str, sub: _Subscription
             ) -> list[discovery_pb2.DiscoveryResponse]:
        """The response ``sub`` is owed now, if any (call with the lock held)."""
        snapshot = self._node_snapshots.get((stream.node_id, type_url),
                                            self._snapshots.get(type_url))
        if snapshot is None:
            return []
        if sub.sent_version == snapshot.version and sub.sent_names == sub.names:
            return []  # this subscription has this version already (ACKed, NACKed or pending)
        if not sub.names and type_url not in WILDCARD_TYPES:
            return []  # an empty EDS/RDS subscription asks for nothing
        chosen = [(name, res) for name, res in snapshot.resources
                  if not sub.names or name in sub.names]
        nonce = f"n{next(self._nonces)}"
        sub.sent_version, sub.sent_names, sub.last_nonce = snapshot.version, sub.names, nonce
        self._responses.append(XdsResponse(
            node_id=stream.node_id, type_url=type_url, version_info=snapshot.version,
            nonce=nonce, resource_names=tuple(name for name, _ in chosen),
            stream=stream.number))
        self._lock.notify_all()
        return [discovery_pb2.DiscoveryResponse(
            version_info=snapshot.version, type_url=type_url, nonce=nonce,
            resources=[res for _, res in chosen])]
