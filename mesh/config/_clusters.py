"""Parsing of ``clusters:``: endpoints, balancing, pools and passive health."""

from __future__ import annotations

import types
from collections.abc import Collection, Mapping
from typing import Any

from mesh.config._model import Cluster, Discovery, Endpoint, PassiveHealth
from mesh.config._reading import (
    Reader,
    Section,
    Where,
    address,
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
from mesh.config._values import format_address

__all__ = ["LB_POLICIES", "parse_clusters"]

LB_POLICIES = ("round_robin", "random", "least_request", "ring_hash", "ketama", "modula")
#: the twemproxy distributions: they hash the Redis/memcached key unless told otherwise
_KEY_HASHING = ("ketama", "modula")

# Keys whose absence means the model's default; the defaults live in _model only.
_OPTIONS: Mapping[str, Reader[Any]] = {
    "connect_timeout": duration(positive=True),
    "idle_timeout": duration(),
    "max_connections": integer(1),
    "max_requests_per_connection": integer(0),
    "max_concurrent_streams": integer(1),
}
_HEALTH_OPTIONS: Mapping[str, Reader[Any]] = {
    "consecutive_failures": integer(0),
    "ejection_time": duration(),
}
_KEYS = ("name", "endpoints", "discovery", "lb", "hash_key", "passive_health", "protocol",
         "local_zone", *_OPTIONS)


def parse_clusters(where: Where, value: Any, known_protocols: Collection[str] | None) -> tuple[Cluster, ...]:
    """Every cluster of the list at ``where``; names must be unique."""
    items = read_list(where, value, "cluster")
    clusters = tuple(_cluster(where.index(i), item, known_protocols) for i, item in enumerate(items))
    check_unique(where, [cluster.name for cluster in clusters], "cluster")
    return clusters


def _cluster(where: Where, value: Any, known_protocols: Collection[str] | None) -> Cluster:
    section = Section(where, value, _KEYS, required=("name",))
    discovery = section.optional("discovery", _discovery)
    if section.has("endpoints") == (discovery is not None):
        raise where.error(
            "a cluster needs exactly one of endpoints and discovery",
            "list the endpoints, or name a discovery source (discovery: {source: zookeeper, "
            "config: {...}}), not both.")
    lb = section.get("lb", choice(LB_POLICIES, "load balancer"), "round_robin")
    key = section.optional("hash_key", hash_key)
    _check_hash_key(section, lb, key)
    if lb in _KEY_HASHING and key is None:
        key = "header:key"  # the Redis/memcached key, twemproxy's choice
    return Cluster(
        name=section.require("name", string),
        endpoints=(_endpoints(section.at("endpoints"), section.data["endpoints"])
                   if discovery is None else ()),
        discovery=discovery,
        lb=lb,
        hash_key=key,
        passive_health=section.get("passive_health", _passive_health, PassiveHealth()),
        protocol=section.optional("protocol", plugin_name(known_protocols, "protocol")),
        local_zone=section.optional("local_zone", string),
        **section.options(_OPTIONS),
    )


def _check_hash_key(section: Section, lb: str, key: str | None) -> None:
    if lb == "ring_hash" and key is None:
        raise section.where.error(
            "lb 'ring_hash' needs a hash_key to hash on",
            "add hash_key: path, host, service, method, source_ip or header:<name>.",
        )
    if lb not in ("ring_hash", *_KEY_HASHING) and key is not None:
        # A leftover hash_key would let a reader believe requests are sticky.
        raise section.at("hash_key").error(
            f"hash_key only applies to lb 'ring_hash', 'ketama' or 'modula', and this cluster uses "
            f"{lb!r}",
            "remove hash_key, or set lb: ring_hash.",
        )


def _endpoints(where: Where, value: Any) -> tuple[Endpoint, ...]:
    items = read_list(where, value, "endpoint")
    endpoints = tuple(_endpoint(where.index(i), item) for i, item in enumerate(items))
    first: dict[tuple[str, int], int] = {}
    for i, endpoint in enumerate(endpoints):
        place = (endpoint.host, endpoint.port)
        if place in first:
            earlier = where.index(first[place]).path
            raise where.index(i).error(
                f"endpoint {format_address(*place)} is already listed at {earlier}",
                "list each endpoint once; raise its weight to send it more traffic.",
            )
        first[place] = i
    return endpoints


def _endpoint(where: Where, value: Any) -> Endpoint:
    if isinstance(value, str):
        return Endpoint(*address(where, value))
    section = Section(where, value, ("address", "weight", "metadata"), required=("address",))
    host, port = section.require("address", address)
    empty: Mapping[str, str] = types.MappingProxyType({})
    metadata = section.get("metadata", _metadata, empty)
    return Endpoint(host, port, weight=section.get("weight", integer(1), 1), metadata=metadata)


def _metadata(where: Where, value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise type_error(where, value, "a mapping of labels", "write labels as key: value, e.g. zone: a.")
    labels: dict[str, str] = {}
    for key, label in value.items():
        if not isinstance(key, str):
            raise where.error(f"label name {key!r} is not a string", "quote the label name.")
        labels[key] = string(where.key(key), label)
    return types.MappingProxyType(labels)


def _passive_health(where: Where, value: Any) -> PassiveHealth:
    section = Section(where, value, tuple(_HEALTH_OPTIONS))
    return PassiveHealth(**section.options(_HEALTH_OPTIONS))


def _discovery(where: Where, value: Any) -> Discovery:
    section = Section(where, value, ("source", "config"), required=("source",))
    config = section.data.get("config") or {}
    if not isinstance(config, Mapping):
        raise type_error(where.key("config"), config, "a mapping of settings",
                         "write the source's settings as key: value.")
    return Discovery(section.require("source", string), types.MappingProxyType(dict(config)))
