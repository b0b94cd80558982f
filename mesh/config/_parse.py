"""From a decoded document (mappings, lists, scalars) to a validated :class:`Config`."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from mesh.config._clusters import parse_clusters
from mesh.config._listeners import Context, parse_listeners, refuse_service_routes
from mesh.config._model import Admin, Cluster, Config, Listener, Logging, SampleUpstream, Xds
from mesh.config._reading import (
    Section,
    Where,
    address,
    boolean,
    check_unique,
    choice,
    read_list,
    string,
)
from mesh.config._values import format_address

__all__ = ["LOG_LEVELS", "SAMPLE_KINDS", "parse"]

LOG_LEVELS = ("debug", "info", "warning", "error")
SAMPLE_KINDS = ("http_hello",)
_KEYS = ("listeners", "clusters", "admin", "logging", "samples", "xds")
_WILDCARDS = ("0.0.0.0", "::")


def parse(
    data: Mapping[str, Any],
    source: str,
    *,
    known_protocols: Collection[str] | None = None,
    known_filters: Collection[str] | None = None,
    unknown_clusters: bool = False,
) -> Config:
    """Validate ``data`` (as decoded from YAML or JSON) into a :class:`Config`.

    ``unknown_clusters`` lets routes name clusters the config does not define (xDS: a route
    may come before its cluster); such a route answers UNAVAILABLE until the cluster exists,
    as Envoy answers 503. A file never gets this: a typo there is an error.

    ``source`` names the document in errors (usually its file name). When
    ``known_protocols`` or ``known_filters`` are given, protocol and filter
    names must be among them. Raises :class:`ConfigError` at the first problem.
    """
    xds = _xds(Where(source).key("xds"), data["xds"]) \
        if isinstance(data, Mapping) and data.get("xds") is not None else None
    # With a control plane, the listeners may all come from it.
    root = Section(Where(source), data, _KEYS, required=() if xds else ("listeners",))
    clusters: tuple[Cluster, ...] = ()
    # With a control plane or service routes, the clusters may all be made while running.
    if root.has("clusters") and (root.data["clusters"] or not (xds or _service_routes(root))):
        clusters = parse_clusters(root.at("clusters"), root.data["clusters"], known_protocols)
    context = Context({c.name: c for c in clusters}, known_protocols, known_filters,
                      unknown_clusters)
    listeners: tuple[Listener, ...] = ()
    if root.has("listeners") and (root.data["listeners"] or not xds):
        listeners = parse_listeners(root.at("listeners"), root.data["listeners"], context)
        if xds is not None:
            refuse_service_routes(root.at("listeners"), listeners)
    config = Config(
        listeners=listeners,
        clusters=clusters,
        admin=_admin(root.at("admin"), root.data["admin"]) if root.has("admin") else Admin(),
        logging=root.get("logging", _logging, Logging()),
        samples=root.get("samples", _samples, ()),
        source=source,
        xds=xds,
    )
    _check_ports(root, config)
    return config


def _service_routes(root: Section) -> bool:
    """Whether a listener has service_routes (read before the listeners are parsed)."""
    listeners = root.data.get("listeners")
    return isinstance(listeners, list | tuple) and any(
        isinstance(listener, Mapping) and listener.get("service_routes") is not None
        for listener in listeners)


def _admin(where: Where, value: Any) -> Admin | None:
    if value is None:  # "admin: null" is how a config turns the admin API off.
        return None
    section = Section(where, value, ("address",))
    return Admin(*section.require("address", address)) if section.has("address") else Admin()


def _xds(where: Where, value: Any) -> Xds:
    section = Section(where, value, ("address", "node_id", "node_cluster"), required=("address",))
    host, port = section.require("address", address)
    return Xds(host, port, section.get("node_id", string, "rpcmesh"),
               section.get("node_cluster", string, "rpcmesh"))


def _logging(where: Where, value: Any) -> Logging:
    readers = {"level": choice(LOG_LEVELS, "log level"), "access_log": boolean}
    return Logging(**Section(where, value, tuple(readers)).options(readers))


def _samples(where: Where, value: Any) -> tuple[SampleUpstream, ...]:
    items = read_list(where, value, "sample upstream", allow_empty=True)
    samples = tuple(_sample(where.index(i), item) for i, item in enumerate(items))
    check_unique(where, [sample.name for sample in samples], "sample upstream")
    return samples


def _sample(where: Where, value: Any) -> SampleUpstream:
    keys = ("name", "address", "kind")
    section = Section(where, value, keys, required=keys)
    return SampleUpstream(
        section.require("name", string),
        *section.require("address", address),
        kind=section.require("kind", choice(SAMPLE_KINDS, "sample kind")),
    )


def _check_ports(root: Section, config: Config) -> None:
    """Refuse two sockets on one port: the second bind would fail at start-up, less clearly."""
    taken: dict[int, list[tuple[str, str]]] = {}
    for where, host, port, label in _bound_addresses(root, config):
        for other_host, other_label in taken.get(port, []):
            if host == other_host or host in _WILDCARDS or other_host in _WILDCARDS:
                raise where.error(
                    f"{format_address(host, port)} is also the address of {other_label}",
                    "give each listener, the admin API and each sample upstream its own port.",
                )
        taken.setdefault(port, []).append((host, label))


def _bound_addresses(root: Section, config: Config) -> list[tuple[Where, str, int, str]]:
    """Every socket the config opens, with where it is written and how to name it."""
    bound: list[tuple[Where, str, int, str]] = []
    if config.admin is not None:
        where = root.at("admin").key("address")
        written = isinstance(root.data.get("admin"), Mapping) and "address" in root.data["admin"]
        label = f"the admin API ({where.path if written else 'its default address'})"
        bound.append((where, config.admin.host, config.admin.port, label))
    named: tuple[tuple[str, str, Sequence[Listener | SampleUpstream]], ...] = (
        ("listener", "listeners", config.listeners),
        ("sample upstream", "samples", config.samples),
    )
    for what, key, items in named:
        for i, item in enumerate(items):
            where = root.at(key).index(i).key("address")
            bound.append((where, item.host, item.port, f"{what} {item.name!r} ({where.path})"))
    return bound
