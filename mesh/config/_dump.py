"""A config back to plain data: what ``/config_dump`` shows and what :func:`parse` reads.

The output has the file's shape, with every default made explicit, so that
``parse(dump(config, secrets=True), config.source) == config`` and an operator sees the
values the proxy actually runs with (secrets redacted by default). Durations are seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh.config._model import (
    Cluster,
    Config,
    Endpoint,
    HeaderMatch,
    Listener,
    Route,
    RouteMatch,
    StringMatch,
)
from mesh.config._values import format_address

__all__ = ["dump"]

_REQUEST_KEYS = ("host", "path", "method", "service", "version", "group")


def dump(config: Config, *, secrets: bool = False) -> dict[str, Any]:
    """``config`` as JSON-serialisable data in the shape of a config file.

    Settings whose key names a password, secret or token (codec ``protocol_options``,
    discovery ``config``) read ``<redacted>`` unless ``secrets``: what ``/config_dump``
    shows must not leak them; what the runtime parses back (xDS merges) must keep them.
    """
    admin = (
        None if config.admin is None else {"address": format_address(config.admin.host, config.admin.port)}
    )
    return {
        "listeners": [_listener(listener, secrets) for listener in config.listeners],
        "clusters": [_cluster(cluster, secrets) for cluster in config.clusters],
        "admin": admin,
        "logging": {"level": config.logging.level, "access_log": config.logging.access_log},
        "samples": [
            {"name": s.name, "address": format_address(s.host, s.port), "kind": s.kind}
            for s in config.samples
        ],
        **({"xds": {"address": format_address(config.xds.host, config.xds.port),
                    "node_id": config.xds.node_id, "node_cluster": config.xds.node_cluster}}
           if config.xds is not None else {}),
    }


def _redacted(settings: Mapping[str, Any], secrets: bool) -> dict[str, Any]:
    return {k: "<redacted>" if _secret(k) and not secrets else thaw(v) for k, v in settings.items()}


def _listener(listener: Listener, secrets: bool) -> dict[str, Any]:
    data = {
        "name": listener.name,
        "address": format_address(listener.host, listener.port),
        "protocol": listener.protocol,
        "routes": [_route(route) for route in listener.routes],
        "filters": [{"name": f.name, "config": thaw(f.config)} for f in listener.filters],
        "sniff_timeout": listener.sniff_timeout,
        "sniff_max_bytes": listener.sniff_max_bytes,
        "idle_timeout": listener.idle_timeout,
        "max_header_size": listener.max_header_size,
        "upstream_protocol": listener.upstream_protocol,
        "protocol_options": _redacted(listener.protocol_options, secrets),
    }
    if listener.service_routes is not None:
        found = listener.service_routes
        data["service_routes"] = {"source": found.source,
                                  "config": _redacted(found.config, secrets),
                                  "refresh": found.refresh, "lower_case": found.lower_case,
                                  "local_zone": found.local_zone}
    if listener.nacos_routes is not None:
        nacos = listener.nacos_routes
        data["nacos_routes"] = {
            "address": nacos.address if isinstance(nacos.address, str) else list(nacos.address),
            "data_id": nacos.data_id, "group": nacos.group, "namespace": nacos.namespace,
            **({"username": nacos.username,
                "password": nacos.password if secrets else "<redacted>"}
               if nacos.username is not None else {})}
    return data


def _route(route: Route) -> dict[str, Any]:
    data: dict[str, Any] = {"name": route.name, "match": _route_match(route.match)}
    if len(route.clusters) == 1 and route.clusters[0].weight == 1:
        data["cluster"] = route.clusters[0].cluster
    else:
        data["weighted_clusters"] = [{"cluster": c.cluster, "weight": c.weight} for c in route.clusters]
    data.update(timeout=route.timeout, hash_key=route.hash_key)
    if route.prefix_rewrite is not None:
        data["prefix_rewrite"] = route.prefix_rewrite
    return data


def _route_match(match: RouteMatch) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in _REQUEST_KEYS:
        condition: StringMatch | None = getattr(match, key)
        if condition is not None:
            data[key] = _string_match(condition)
    if match.headers:
        data["headers"] = [_header_match(header) for header in match.headers]
    return data


def _string_match(match: StringMatch) -> dict[str, Any]:
    if match.present:
        return {"present": True}
    if match.regex is not None:
        return {"regex": match.regex.pattern}
    if match.prefix is not None:
        return {"prefix": match.prefix}
    return {"exact": match.exact}


def _header_match(header: HeaderMatch) -> dict[str, Any]:
    return {"name": header.name, **_string_match(header.match), "invert": header.invert}


def _cluster(cluster: Cluster, secrets: bool) -> dict[str, Any]:
    health = cluster.passive_health
    data: dict[str, Any] = {
        "name": cluster.name,
        "lb": cluster.lb,
        "hash_key": cluster.hash_key,
        "connect_timeout": cluster.connect_timeout,
        "idle_timeout": cluster.idle_timeout,
        "max_connections": cluster.max_connections,
        "max_requests_per_connection": cluster.max_requests_per_connection,
        "max_concurrent_streams": cluster.max_concurrent_streams,
        "passive_health": {
            "consecutive_failures": health.consecutive_failures,
            "ejection_time": health.ejection_time,
        },
        "protocol": cluster.protocol,
        "local_zone": cluster.local_zone,
    }
    if cluster.discovery is None:  # exactly one of the two, as parse wants
        data["endpoints"] = [_endpoint(endpoint) for endpoint in cluster.endpoints]
    else:
        data["discovery"] = {"source": cluster.discovery.source,
                             "config": _redacted(cluster.discovery.config, secrets)}
    return data


def _endpoint(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "address": format_address(endpoint.host, endpoint.port),
        "weight": endpoint.weight,
        "metadata": dict(endpoint.metadata),
    }


def thaw(value: Any) -> Any:
    """The inverse of freezing filter settings: plain dicts and lists again."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


def _secret(key: str) -> bool:
    """Settings /config_dump must not show (a Redis password...)."""
    return any(word in key.lower() for word in ("password", "secret", "token"))
