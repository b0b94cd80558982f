"""Parsing of ``listeners:``: addresses, protocols, filter chains and routes."""

from __future__ import annotations

import types
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from mesh.config._errors import did_you_mean
from mesh.config._match import parse_route_match
from mesh.config._model import (
    Cluster,
    FilterConfig,
    Listener,
    NacosRoutes,
    Route,
    RouteMatch,
    ServiceRoutes,
    WeightedCluster,
)
from mesh.config._reading import (
    Reader,
    Section,
    Where,
    address,
    boolean,
    check_unique,
    choice,
    duration,
    hash_key,
    integer,
    plugin_name,
    read_list,
    string,
    type_error,
)

__all__ = ["SERVICE_KEYS", "Context", "parse_dynamic_routes", "parse_listeners",
           "refuse_service_routes"]

_OPTIONS: Mapping[str, Reader[Any]] = {
    "sniff_timeout": duration(positive=True),
    "sniff_max_bytes": integer(1),
    "idle_timeout": duration(),
    "max_header_size": integer(1),
}
_KEYS = (
    "name",
    "address",
    "protocol",
    "routes",
    "cluster",
    "filters",
    "upstream_protocol",
    "protocol_options",
    "service_routes",
    "nacos_routes",
    *_OPTIONS,
)
_ROUTE_KEYS = ("name", "match", "cluster", "weighted_clusters", "timeout", "hash_key",
               "prefix_rewrite")
#: the registries ``service_routes`` can list, each with the settings of its discovery source
#: that name one service: generated clusters set the first, and the file may set none of them
SERVICE_KEYS: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "consul": ("service",), "eureka": ("app", "vip_address"), "nacos": ("service",)})
_SERVICE_ROUTES_KEYS = ("source", "config", "refresh", "lower_case", "local_zone")
_NACOS_ROUTES_KEYS = ("address", "data_id", "group", "namespace", "username", "password")
#: service routes match request paths: HTTP listeners only
_PATH_PROTOCOLS = ("http1", "http2", "auto")


@dataclass(frozen=True, slots=True)
class Context:
    """What listener parsing checks names against: clusters already parsed, and plugins."""

    clusters: Mapping[str, Cluster]
    known_protocols: Collection[str] | None
    known_filters: Collection[str] | None
    unknown_clusters: bool = False

    def cluster_ref(self, where: Where, value: Any) -> str:
        """A reader of the name of a defined cluster."""
        name = string(where, value)
        if name not in self.clusters and not self.unknown_clusters:
            defined = ", ".join(sorted(self.clusters))
            otherwise = f"define a cluster named {name!r} under clusters:"
            otherwise += f", or use one of: {defined}." if defined else "."
            fix = did_you_mean(name, self.clusters, otherwise)
            raise where.error(f"no cluster named {name!r}", fix)
        return name


def parse_listeners(where: Where, value: Any, context: Context) -> tuple[Listener, ...]:
    """Every listener of the list at ``where``; names must be unique."""
    items = read_list(where, value, "listener")
    listeners = tuple(_listener(where.index(i), item, context) for i, item in enumerate(items))
    check_unique(where, [listener.name for listener in listeners], "listener")
    return listeners


def _listener(where: Where, value: Any, context: Context) -> Listener:
    section = Section(where, value, _KEYS, required=("name", "address"))
    name = section.require("name", string)
    protocol = section.get("protocol", plugin_name(context.known_protocols, "protocol", ("auto",)), "auto")
    service_routes = section.optional("service_routes", _service_routes)
    if service_routes is not None and protocol not in _PATH_PROTOCOLS:
        raise section.at("service_routes").error(
            f"service routes match request paths, and this listener speaks {protocol!r}",
            "use protocol http1, http2 or auto, or remove service_routes.")
    nacos_routes = section.optional("nacos_routes", _nacos_routes)
    if nacos_routes is not None and service_routes is not None:
        raise section.at("nacos_routes").error(
            "a listener takes its dynamic routes from one place, and this one has both "
            "service_routes and nacos_routes",
            "remove one of them, or put the Nacos routes on another listener.")
    if nacos_routes is not None and protocol == "tcp":
        raise section.at("nacos_routes").error(
            "a tcp listener has one catch-all route, and nacos_routes would add more",
            "use a protocol with routes (http1, http2, grpc...), or remove nacos_routes.")
    dynamic = service_routes is not None or nacos_routes is not None
    routes = _routes(section, name, context, dynamic)
    if protocol == "tcp":
        _check_tcp(section, routes)
    return Listener(
        name,
        *section.require("address", address),
        protocol=protocol,
        routes=routes,
        filters=_filters(section, context),
        upstream_protocol=section.optional(
            "upstream_protocol", plugin_name(context.known_protocols, "protocol")
        ),
        protocol_options=section.get("protocol_options", _protocol_options,
                                     types.MappingProxyType({})),
        service_routes=service_routes,
        nacos_routes=nacos_routes,
        **section.options(_OPTIONS),
    )


def _routes(section: Section, listener: str, context: Context,
            service_routes: bool = False) -> tuple[Route, ...]:
    if service_routes:  # (or nacos_routes) the file's routes are optional, and come first
        if section.has("cluster"):
            raise section.at("cluster").error(
                "the cluster shorthand is a catch-all route, and it would come before every "
                "dynamic (service_routes, nacos_routes) route, so none would ever match",
                "remove cluster:, or write your own routes under routes:.")
        if not section.has("routes"):
            return ()
    elif section.exactly_one(("routes", "cluster")) == "cluster":
        cluster = section.require("cluster", context.cluster_ref)
        return (Route(f"{listener}/0", RouteMatch(), (WeightedCluster(cluster, 1),)),)
    where = section.at("routes")
    items = read_list(where, section.data["routes"], "route", allow_empty=service_routes)
    routes = tuple(_route(where.index(i), item, f"{listener}/{i}", context) for i, item in enumerate(items))
    check_unique(where, [route.name for route in routes], "route")
    return routes


def _route(where: Where, value: Any, default_name: str, context: Context) -> Route:
    section = Section(where, value, _ROUTE_KEYS)
    clusters: tuple[WeightedCluster, ...]
    if section.exactly_one(("cluster", "weighted_clusters")) == "cluster":
        clusters = (WeightedCluster(section.require("cluster", context.cluster_ref), 1),)
    else:
        clusters = _weighted(section.at("weighted_clusters"), section.data["weighted_clusters"], context)
    key = section.optional("hash_key", hash_key)
    if key is not None and all(c.cluster not in context.clusters or
                               context.clusters[c.cluster].lb not in ("ring_hash", "ketama")
                               for c in clusters):
        raise section.at("hash_key").error(
            "hash_key only applies when a route's cluster uses lb 'ring_hash', and none does here",
            "remove hash_key, or set lb: ring_hash on the cluster.",
        )
    match = section.optional("match", parse_route_match) or RouteMatch()
    rewrite = section.optional("prefix_rewrite", string)
    if rewrite is not None and (match.path is None or match.path.prefix is None):
        raise section.at("prefix_rewrite").error(
            "prefix_rewrite replaces the path prefix the route matched, and this route "
            "matches no path prefix", "add match: {path: {prefix: ...}}, or remove prefix_rewrite.")
    return Route(
        name=section.get("name", string, default_name),
        match=match,
        clusters=clusters,
        hash_key=key,
        prefix_rewrite=rewrite,
        **section.options({"timeout": duration()}),
    )


def _weighted(where: Where, value: Any, context: Context) -> tuple[WeightedCluster, ...]:
    items = read_list(where, value, "weighted cluster")
    shares: list[WeightedCluster] = []
    for i, item in enumerate(items):
        section = Section(where.index(i), item, ("cluster", "weight"), required=("cluster", "weight"))
        share = WeightedCluster(
            section.require("cluster", context.cluster_ref),
            section.require("weight", integer(0, 1_000_000)),
        )
        if share.cluster in {earlier.cluster for earlier in shares}:
            raise section.at("cluster").error(
                f"cluster {share.cluster!r} is listed twice",
                "merge the two entries into one weight.",
            )
        shares.append(share)
    if sum(share.weight for share in shares) == 0:
        raise where.error(
            "every weight is 0, so no request could be routed", "give one cluster a weight above 0."
        )
    return tuple(shares)


def _service_routes(where: Where, value: Any) -> ServiceRoutes:
    section = Section(where, value, _SERVICE_ROUTES_KEYS, required=("source",))
    source = section.require("source", choice(tuple(SERVICE_KEYS), "service_routes source"))
    config = section.data.get("config") or {}
    if not isinstance(config, Mapping):
        raise type_error(section.at("config"), config, "a mapping of settings",
                         f"write the {source} source's settings as key: value.")
    for key in SERVICE_KEYS[source]:
        if key in config:
            raise section.at("config").key(key).error(
                f"service_routes makes one cluster per service, and sets {SERVICE_KEYS[source][0]}"
                " of each itself", f"remove {key}: the registry's service list names the services.")
    frozen = freeze(dict(config))
    assert isinstance(frozen, Mapping)
    return ServiceRoutes(
        source,
        frozen,
        **section.options({"refresh": duration(positive=True), "lower_case": boolean}),
        local_zone=section.optional("local_zone", string),
    )


def _nacos_routes(where: Where, value: Any) -> NacosRoutes:
    section = Section(where, value, _NACOS_ROUTES_KEYS, required=("address", "data_id"))
    address = section.data["address"]
    if not (isinstance(address, str) and address.strip()) and not (
            isinstance(address, list) and address and all(isinstance(a, str) for a in address)):
        raise type_error(section.at("address"), address, "a server address",
                         "write e.g. '127.0.0.1:8848' or 'http://nacos:8848/nacos' "
                         "(several: comma-separated or a list).")
    username = section.optional("username", string)
    password = section.optional("password", string)
    if (username is None) != (password is None):
        raise where.error("username and password go together (Nacos auth)",
                          "give both, or neither.")
    return NacosRoutes(
        address if isinstance(address, str) else tuple(address),
        section.require("data_id", string),
        group=section.get("group", string, "DEFAULT_GROUP"),
        namespace=section.get("namespace", _blank_or_string, ""),
        username=username,
        password=password,
    )


def _blank_or_string(where: Where, value: Any) -> str:
    return "" if value in ("", None) else string(where, value)


def parse_dynamic_routes(source: str, value: Any, listener: Listener,
                         clusters: Mapping[str, Cluster], kind: str = "dynamic"
                         ) -> tuple[Route, ...]:
    """The routes of a dynamic document (a list in the schema of a listener's ``routes:``) for
    ``listener``, naming ``clusters``; ``source`` names the document in errors. An unnamed
    route is ``<listener>/<kind>/<index>``; a name may not be one of the listener's own.
    Raises :class:`ConfigError`."""
    where = Where(source)
    context = Context(clusters, None, None)
    items = read_list(where, value, "route", allow_empty=True)
    routes = tuple(_route(where.index(i), item, f"{listener.name}/{kind}/{i}", context)
                   for i, item in enumerate(items))
    check_unique(where, [route.name for route in routes], "route")
    own = {route.name for route in listener.routes}
    for i, route in enumerate(routes):
        if route.name in own:
            raise where.index(i).key("name").error(
                f"listener {listener.name!r} already has a route named {route.name!r}",
                "give the route another name.")
    return routes


def refuse_service_routes(where: Where, listeners: tuple[Listener, ...]) -> None:
    """With an ``xds`` section, no listener may have ``service_routes`` or ``nacos_routes``:
    both rewrite the config."""
    for i, listener in enumerate(listeners):
        if listener.nacos_routes is not None:
            raise where.index(i).key("nacos_routes").error(
                "nacos_routes and the xds section would both rewrite the running config's "
                "routes, so they cannot be used together",
                "remove the xds section, or remove nacos_routes and have the control plane "
                "send these routes.")
        if listener.service_routes is not None:
            raise where.index(i).key("service_routes").error(
                "service_routes and the xds section would both rewrite the running config's "
                "routes and clusters, so they cannot be used together",
                "remove the xds section, or remove service_routes and have the control plane "
                "send these routes.")


def _check_tcp(section: Section, routes: tuple[Route, ...]) -> None:
    # A TCP connection carries no request to match on: one route, one cluster, no conditions.
    where = section.at("routes")
    fix = "give the listener one route to one cluster, or write 'cluster: NAME' on the listener."
    if len(routes) != 1:
        raise where.error(f"a tcp listener takes exactly one route, and this one has {len(routes)}", fix)
    if len(routes[0].clusters) != 1:
        raise (
            where.index(0)
            .key("weighted_clusters")
            .error("a tcp listener sends every connection to a single cluster", fix)
        )
    if routes[0].match != RouteMatch():
        raise (
            where.index(0)
            .key("match")
            .error("a tcp listener has no requests to match on", "remove match: from this route.")
        )


def _filters(section: Section, context: Context) -> tuple[FilterConfig, ...]:
    if not section.has("filters"):
        return ()
    where = section.at("filters")
    items = read_list(where, section.data["filters"], "filter", allow_empty=True)
    return tuple(_filter(where.index(i), item, context) for i, item in enumerate(items))


def _filter(where: Where, value: Any, context: Context) -> FilterConfig:
    section = Section(where, value, ("name", "config"), required=("name",))
    name = section.require("name", plugin_name(context.known_filters, "filter"))
    config = section.optional("config", _filter_settings) or types.MappingProxyType({})
    return FilterConfig(name, config)


def _protocol_options(where: Where, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise type_error(where, value, "a mapping of the codec's settings",
                         "write them as key: value, e.g. password: s3cret for redis.")
    frozen = freeze(value)
    assert isinstance(frozen, Mapping)
    return frozen


def _filter_settings(where: Where, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise type_error(where, value, "a mapping of settings", "write settings as key: value.")
    frozen = freeze(value)
    assert isinstance(frozen, Mapping)
    return frozen


def freeze(value: Any) -> Any:
    """``value`` made read-only all the way down: mappings become proxies, lists tuples."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value
