"""xDS resources (Envoy v3 protos) into rpcmesh's config form (the dicts a YAML file holds).

The result goes through the same parser as a file (mesh.config.parse), so a resource rpcmesh
cannot honour is refused with the same precise message a file would get, and that message
is what the NACK carries. What has no rpcmesh equivalent is refused here, never dropped
silently: a listener filter other than the HTTP connection manager or tcp_proxy, a route
action other than cluster / weighted_clusters, a cluster type other than STATIC,
STRICT_DNS or EDS.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TranslationError", "cluster", "listener", "route_config"]

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3." \
       "HttpConnectionManager"
_TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
_HTTP2_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_CODECS = {0: "auto", 1: "http1", 2: "http2"}
_LB = {0: "round_robin", 1: "least_request", 3: "random"}


class TranslationError(ValueError):
    """A resource rpcmesh cannot take; the message goes into the NACK."""


def _address(socket_address: Any, what: str) -> str:
    if not socket_address.address or not 0 < socket_address.port_value < 65536:
        raise TranslationError(f"{what}: needs a socket address with a port")
    host = socket_address.address
    return f"[{host}]:{socket_address.port_value}" if ":" in host else \
        f"{host}:{socket_address.port_value}"


def _duration(value: Any) -> str:
    return f"{value.seconds + value.nanos / 1e9:g}s"


def listener(resource: Any) -> tuple[dict[str, Any], str | None]:
    """(listener dict, the RDS route config it waits for or None)."""
    from envoy.extensions.filters.network.http_connection_manager.v3 import (  # type: ignore[import-untyped]
        http_connection_manager_pb2 as hcm_pb2,
    )
    from envoy.extensions.filters.network.tcp_proxy.v3 import (  # type: ignore[import-untyped]
        tcp_proxy_pb2,
    )

    what = f"listener {resource.name!r}"
    out: dict[str, Any] = {
        "name": resource.name,
        "address": _address(resource.address.socket_address, what),
    }
    if len(resource.filter_chains) != 1 or len(resource.filter_chains[0].filters) != 1:
        raise TranslationError(f"{what}: exactly one filter chain with one filter is supported")
    network_filter = resource.filter_chains[0].filters[0]
    typed = network_filter.typed_config
    if typed.type_url == _HCM:
        manager = hcm_pb2.HttpConnectionManager()
        typed.Unpack(manager)
        if manager.codec_type not in _CODECS:
            raise TranslationError(f"{what}: codec_type {manager.codec_type} is not supported")
        out["protocol"] = _CODECS[manager.codec_type]
        if manager.HasField("route_config"):
            out["routes"] = route_config(manager.route_config)
            return out, None
        if manager.HasField("rds"):
            return out, manager.rds.route_config_name
        raise TranslationError(f"{what}: the connection manager has no route_config and no rds")
    if typed.type_url == _TCP_PROXY:
        proxy = tcp_proxy_pb2.TcpProxy()
        typed.Unpack(proxy)
        if not proxy.cluster:
            raise TranslationError(f"{what}: tcp_proxy needs a cluster")
        out.update(protocol="tcp", cluster=proxy.cluster)
        return out, None
    raise TranslationError(f"{what}: network filter {network_filter.name!r} "
                           f"({typed.type_url}) is not supported")


def route_config(resource: Any) -> list[dict[str, Any]]:
    """The routes of a RouteConfiguration: virtual hosts in order, their routes in order."""
    routes: list[dict[str, Any]] = []
    for host in resource.virtual_hosts:
        domains = [d for d in host.domains if d != "*"]
        for index, route in enumerate(host.routes):
            what = f"route config {resource.name!r}, virtual host {host.name!r}, route {index}"
            match = _match(route.match, what)
            if domains and "*" not in host.domains:  # "*" matches every host
                match["host"] = {"regex": "|".join(_domain_regex(d) for d in domains)}
            entry: dict[str, Any] = {"name": f"{host.name}/{route.name or index}", "match": match}
            if not route.HasField("route"):
                raise TranslationError(f"{what}: only route actions are supported "
                                       "(no redirect or direct_response yet)")
            action = route.route
            kind = action.WhichOneof("cluster_specifier")
            if kind == "cluster":
                entry["cluster"] = action.cluster
            elif kind == "weighted_clusters":
                entry["weighted_clusters"] = [
                    {"cluster": w.name, "weight": w.weight.value if w.HasField("weight") else 1}
                    for w in action.weighted_clusters.clusters]
            else:
                raise TranslationError(f"{what}: cluster specifier {kind!r} is not supported")
            if action.HasField("timeout"):
                entry["timeout"] = _duration(action.timeout)
            if action.prefix_rewrite:
                entry["prefix_rewrite"] = action.prefix_rewrite
            routes.append(entry)
    if not routes:
        raise TranslationError(f"route config {resource.name!r} has no routes")
    return routes


def _domain_regex(domain: str) -> str:
    import re

    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    if host.startswith("*"):
        return ".*" + re.escape(host[1:])
    if host.endswith("*"):
        return re.escape(host[:-1]) + ".*"
    return re.escape(host)


def _match(match: Any, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = match.WhichOneof("path_specifier")
    if kind == "prefix":
        if match.prefix:
            out["path"] = {"prefix": match.prefix}
    elif kind == "path":
        out["path"] = {"exact": match.path}
    elif kind == "safe_regex":
        out["path"] = {"regex": match.safe_regex.regex}
    else:
        raise TranslationError(f"{what}: path match {kind!r} is not supported")
    if match.HasField("case_sensitive") and not match.case_sensitive.value:
        raise TranslationError(f"{what}: case-insensitive path matching is not supported")
    headers = [_header(h, what) for h in match.headers]
    if headers:
        out["headers"] = headers
    return out


def _header(header: Any, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": header.name}
    kind = header.WhichOneof("header_match_specifier")
    if kind == "exact_match":
        out["exact"] = header.exact_match
    elif kind == "prefix_match":
        out["prefix"] = header.prefix_match
    elif kind == "safe_regex_match":
        out["regex"] = header.safe_regex_match.regex
    elif kind == "present_match":
        out["present"] = True
    elif kind == "string_match":
        string = header.string_match
        which = string.WhichOneof("match_pattern")
        if which in ("exact", "prefix"):
            out[which] = getattr(string, which)
        elif which == "safe_regex":
            out["regex"] = string.safe_regex.regex
        else:
            raise TranslationError(f"{what}: header {header.name!r}: {which} is not supported")
    elif kind is None:
        out["present"] = True
    else:
        raise TranslationError(f"{what}: header {header.name!r}: {kind} is not supported")
    if header.invert_match:
        out["invert"] = True
    return out


def cluster(resource: Any, ads_address: str, node_id: str) -> dict[str, Any]:
    """A Cluster: STATIC / STRICT_DNS endpoints inline, EDS through the xds source."""
    from mesh.discovery.xds import endpoints_of

    what = f"cluster {resource.name!r}"
    out: dict[str, Any] = {"name": resource.name}
    if resource.lb_policy not in _LB:
        raise TranslationError(f"{what}: lb_policy {resource.lb_policy} is not supported "
                               "(round robin, least request, random)")
    out["lb"] = _LB[resource.lb_policy]
    if resource.HasField("connect_timeout"):
        out["connect_timeout"] = _duration(resource.connect_timeout)
    if resource.HasField("http2_protocol_options") or \
            _HTTP2_OPTIONS in resource.typed_extension_protocol_options:
        out["protocol"] = "http2"
    kind = resource.WhichOneof("cluster_discovery_type")
    discovery_type = resource.type if kind == "type" else None
    if discovery_type == 3:  # EDS
        name = resource.eds_cluster_config.service_name or resource.name
        out["discovery"] = {"source": "xds", "config": {
            "address": ads_address, "cluster_name": name, "node_id": node_id}}
    elif discovery_type in (0, None):  # STATIC
        try:
            endpoints = endpoints_of(resource.load_assignment)
        except ValueError as exc:
            raise TranslationError(f"{what}: {exc}") from None
        if not endpoints:
            raise TranslationError(f"{what}: a STATIC cluster without endpoints")
        out["endpoints"] = [{"address": f"{e.host}:{e.port}", "weight": e.weight,
                             **({"metadata": dict(e.metadata)} if e.metadata else {})}
                            for e in endpoints]
    elif discovery_type == 1:  # STRICT_DNS: every address of the name
        hosts = [lb.endpoint.address.socket_address for group in resource.load_assignment.endpoints
                 for lb in group.lb_endpoints]
        if len(hosts) != 1:
            raise TranslationError(f"{what}: STRICT_DNS with one host name is supported")
        out["discovery"] = {"source": "dns", "config": {"name": hosts[0].address,
                                                        "port": hosts[0].port_value}}
    else:
        raise TranslationError(f"{what}: discovery type {discovery_type} is not supported")
    return out
