"""The typed configuration model: frozen dataclasses, built once per config load.

Everything here is immutable (tuples, read-only mappings) because a running
proxy swaps whole snapshots atomically and in-flight requests keep reading the
old one; nothing may change under them. Validation lives in the loader, so
these classes trust their arguments.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Admin",
    "Cluster",
    "Config",
    "Discovery",
    "Endpoint",
    "FilterConfig",
    "HeaderMatch",
    "Listener",
    "Logging",
    "PassiveHealth",
    "Route",
    "RouteMatch",
    "SampleUpstream",
    "NacosRoutes",
    "ServiceRoutes",
    "StringMatch",
    "WeightedCluster",
]

_EMPTY: Mapping[str, str] = types.MappingProxyType({})


@dataclass(frozen=True, slots=True)
class StringMatch:
    """One condition on a string; the loader sets exactly one of the four.

    ``present`` means "the value exists" (any value, even empty); ``regex``
    must match the whole value, as in Envoy's ``safe_regex``.
    """

    exact: str | None = None
    prefix: str | None = None
    regex: re.Pattern[str] | None = None
    present: bool = False

    def matches(self, value: str | None) -> bool:
        """Whether ``value`` (None when the key is absent) satisfies the condition."""
        if value is None:
            return False
        if self.present:
            return True
        if self.exact is not None:
            return value == self.exact
        if self.prefix is not None:
            return value.startswith(self.prefix)
        if self.regex is not None:
            return self.regex.fullmatch(value) is not None
        return False


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """A condition on one header or RPC attachment, looked up by lower-case ``name``."""

    name: str
    match: StringMatch
    invert: bool = False

    def matches(self, value: str | None) -> bool:
        """``match`` applied to ``value``, negated when ``invert`` (so present+invert = absent)."""
        return self.match.matches(value) != self.invert


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Conditions a request must all meet; None (or no headers) means "any"."""

    host: StringMatch | None = None
    path: StringMatch | None = None
    method: StringMatch | None = None
    service: StringMatch | None = None
    version: StringMatch | None = None
    group: StringMatch | None = None
    headers: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class WeightedCluster:
    """A share of a route's traffic: ``weight`` out of the route's total."""

    cluster: str
    weight: int


@dataclass(frozen=True, slots=True)
class Route:
    """Where matching requests go. ``timeout`` in seconds; 0 means none."""

    name: str
    match: RouteMatch
    clusters: tuple[WeightedCluster, ...]
    timeout: float = 15.0
    hash_key: str | None = None
    #: replaces the matched ``path`` prefix before forwarding (Envoy's ``prefix_rewrite``;
    #: Spring Cloud Gateway's ``StripPrefix``)
    prefix_rewrite: str | None = None


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """A filter by its registered name, with its own (deeply read-only) settings."""

    name: str
    config: Mapping[str, Any]

    def __hash__(self) -> int:
        # The generated hash would fail on the mapping; equal filters share a name.
        return hash(self.name)


@dataclass(frozen=True, slots=True)
class ServiceRoutes:
    """A route and a cluster for every service a registry lists (Spring Cloud Gateway's
    discovery locator): ``/<service>/**`` goes to the service with the prefix stripped.

    ``source`` is the registry's discovery source (``eureka``, ``nacos``, ``consul``) and
    ``config`` its settings without the service key; the service list is read again every
    ``refresh`` seconds (mesh/service_routes.py).
    """

    source: str
    config: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    refresh: float = 30.0
    #: the route path in lower case (Spring's ``lowerCaseServiceId``: Eureka names are upper)
    lower_case: bool = False
    #: the ``local_zone`` of every generated cluster
    local_zone: str | None = None

    def __hash__(self) -> int:
        # The generated hash would fail on the mapping.
        return hash((self.source, self.refresh))


@dataclass(frozen=True, slots=True)
class NacosRoutes:
    """Routes kept in a Nacos config item (``data_id`` in ``group``, tenant ``namespace``),
    after the listener's own: fetched at start, long-polled for changes
    (mesh/nacos_routes.py). ``address`` is checked when the poller is made."""

    address: str | tuple[str, ...]
    data_id: str
    group: str = "DEFAULT_GROUP"
    namespace: str = ""
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Listener:
    """An address the proxy accepts on, the protocol it expects and its routes."""

    name: str
    host: str
    port: int
    protocol: str
    routes: tuple[Route, ...]
    filters: tuple[FilterConfig, ...] = ()
    sniff_timeout: float = 5.0
    sniff_max_bytes: int = 4096
    idle_timeout: float = 300.0
    max_header_size: int = 65536
    upstream_protocol: str | None = None
    #: the codec's own settings (Redis ``password``...), handed to it as ConnectionOptions.extra
    protocol_options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    #: routes and clusters made from a registry's service list, after ``routes``
    service_routes: ServiceRoutes | None = None
    #: routes read from a Nacos config item, after ``routes``
    nacos_routes: NacosRoutes | None = None


@dataclass(frozen=True, slots=True)
class PassiveHealth:
    """Outlier ejection: ``consecutive_failures`` in a row eject for ``ejection_time`` s.

    ``consecutive_failures`` of 0 turns ejection off.
    """

    consecutive_failures: int = 5
    ejection_time: float = 30.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream address with its balancing weight and free-form labels."""

    host: str
    port: int
    weight: int = 1
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def __hash__(self) -> int:
        # Balancers and health trackers key dicts by endpoint; the generated
        # hash would fail on the mapping. Equal endpoints share these fields.
        return hash((self.host, self.port, self.weight))


@dataclass(frozen=True, slots=True)
class Discovery:
    """Where a cluster's endpoints come from when they are not listed: a mesh.discovery source."""

    source: str
    config: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Cluster:
    """A named group of endpoints and how to balance and pool connections to them."""

    name: str
    endpoints: tuple[Endpoint, ...]
    lb: str = "round_robin"
    hash_key: str | None = None
    connect_timeout: float = 2.0
    idle_timeout: float = 60.0
    max_connections: int = 1024
    max_requests_per_connection: int = 0
    passive_health: PassiveHealth = PassiveHealth()
    protocol: str | None = None
    # Multiplexed and pipelined protocols (HTTP/2, Dubbo, Redis): requests in
    # flight on one upstream connection before the pool opens another.
    max_concurrent_streams: int = 1024
    #: endpoints found by a source (ZooKeeper...) instead of ``endpoints``
    discovery: Discovery | None = None
    #: zone preference: endpoints whose ``zone`` metadata is this one take the traffic while
    #: any of them is healthy (Spring Cloud's zone affinity, Envoy's zone-aware routing)
    local_zone: str | None = None


@dataclass(frozen=True, slots=True)
class Admin:
    """Where the admin HTTP API listens."""

    host: str = "127.0.0.1"
    port: int = 9901


@dataclass(frozen=True, slots=True)
class Xds:
    """An xDS management server that gives listeners, routes and clusters (docs/xds.md)."""

    host: str
    port: int
    node_id: str = "rpcmesh"
    node_cluster: str = "rpcmesh"


@dataclass(frozen=True, slots=True)
class Logging:
    """Log level and whether each request writes an access-log line."""

    level: str = "info"
    access_log: bool = True


@dataclass(frozen=True, slots=True)
class SampleUpstream:
    """A server built into rpcmesh (``kind``: "http_hello") for demos and the default config."""

    name: str
    host: str
    port: int
    kind: str


@dataclass(frozen=True, slots=True)
class Config:
    """One complete, validated configuration snapshot."""

    listeners: tuple[Listener, ...]
    clusters: tuple[Cluster, ...]
    admin: Admin | None
    logging: Logging
    samples: tuple[SampleUpstream, ...] = ()
    source: str = "<string>"
    #: listeners, routes and clusters also come from this control plane (docs/xds.md)
    xds: Xds | None = None
    # Built once here because routing looks clusters up by name per request.
    _by_name: Mapping[str, Cluster] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = types.MappingProxyType({c.name: c for c in self.clusters})
        object.__setattr__(self, "_by_name", by_name)

    def cluster(self, name: str) -> Cluster:
        """The cluster called ``name``; raises KeyError naming the clusters there are."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise KeyError(f"no cluster named {name!r} in {self.source} (clusters: {known})") from None
