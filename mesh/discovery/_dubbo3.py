"""Dubbo 3 application-level registry entries: what they look like and whom they serve.

Pure functions over the JSON Dubbo 3 writes (apache/dubbo 3.x): Curator's ServiceInstance of an
instance (``/services/<app>/<host>:<port>`` in ZooKeeper; metadata keys of
ServiceInstanceMetadataUtils), the MetadataInfo of a revision (``/dubbo/metadata/<app>/<revision>``
with ``remote`` storage) and the interface-to-applications mapping (``/dubbo/mapping/<interface>``,
ServiceNameMapping.getAppNames). tests/golden/dubbo3/ has samples in these shapes. The ZooKeeper
side is mesh/discovery/zookeeper_app.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from mesh.config import Endpoint

__all__ = ["AppMatcher", "BadEntry", "Instance", "Service", "parse_instance", "parse_mapping",
           "parse_metadata"]

REVISION = "dubbo.metadata.revision"
STORAGE_TYPE = "dubbo.metadata.storage-type"
ENDPOINTS = "dubbo.endpoints"
EMPTY_REVISION = "0"  # RevisionResolver.EMPTY_REVISION: the instance exports no service
DEFAULT_WEIGHT = 100
_WILDCARDS = ("0.0.0.0", "::")
#: service parameters shown as endpoint metadata (as for interface-level providers)
_PARAMS = ("timeout", "loadbalance", "side", "dubbo", "release")


class BadEntry(ValueError):
    """A node that is not what Dubbo 3 writes; the message says why."""


@dataclass(frozen=True)
class Instance:
    """One ``/services/<app>/<id>`` node."""

    app: str
    id: str
    host: str
    port: int
    revision: str
    storage: str  # "local" or "remote"
    ports: Mapping[str, int]  # dubbo.endpoints: protocol -> port
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class Service:
    """One entry of a MetadataInfo's ``services``."""

    name: str
    group: str
    version: str
    protocol: str
    port: int  # -1 (Dubbo's default) when absent
    params: Mapping[str, str]


def _object(raw: bytes | None, what: str) -> dict[str, Any]:
    if not raw:
        raise BadEntry(f"empty {what} node")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEntry(f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadEntry(f"{what} is not a JSON object")
    return doc


def _port(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadEntry(f"{what} is not a map of strings")
    return value


def parse_mapping(raw: bytes | None) -> list[str]:
    """The application names of a ``/dubbo/mapping/<interface>`` node."""
    text = (raw or b"").decode("utf-8", "replace")
    return sorted({name.strip() for name in text.split(",") if name.strip()})


def parse_instance(app: str, child: str, raw: bytes | None) -> Instance:
    doc = _object(raw, "instance")
    host, port = doc.get("address"), doc.get("port")
    if not isinstance(host, str) or not host:
        raise BadEntry("no address")
    if host in _WILDCARDS:
        raise BadEntry(f"the instance registered the wildcard address {host}")
    if not _port(port):
        raise BadEntry(f"port {port!r} is not 1-65535")
    payload = doc.get("payload")
    if not isinstance(payload, dict):
        raise BadEntry("no payload (Dubbo's ZookeeperInstance)")
    metadata = _strings(payload.get("metadata"), "payload.metadata")
    revision = metadata.get(REVISION)
    if not revision:
        raise BadEntry(f"no {REVISION} in payload.metadata")
    ports: dict[str, int] = {}
    if metadata.get(ENDPOINTS):
        try:
            endpoints = json.loads(metadata[ENDPOINTS])
        except ValueError:
            raise BadEntry(f"{ENDPOINTS} is not JSON") from None
        if not isinstance(endpoints, list):
            raise BadEntry(f"{ENDPOINTS} is not a list")
        for item in endpoints:
            if not (isinstance(item, dict) and isinstance(item.get("protocol"), str)
                    and _port(item.get("port"))):
                raise BadEntry(f"{ENDPOINTS} entry {item!r} is not {{port, protocol}}")
            ports.setdefault(item["protocol"], item["port"])
    return Instance(app, child, host, port, revision, metadata.get(STORAGE_TYPE, "local"),
                    ports, metadata)


def parse_metadata(raw: bytes | None) -> tuple[Service, ...]:
    """The services of a MetadataInfo node (``/dubbo/metadata/<app>/<revision>``)."""
    doc = _object(raw, "metadata")
    services = doc.get("services")
    if not isinstance(services, dict):
        raise BadEntry("no services object")
    found = []
    for key, info in sorted(services.items()):
        if not isinstance(info, dict):
            raise BadEntry(f"service {key!r} is not an object")
        name, group, version, protocol = (info.get(f) or "" for f in (
            "name" if info.get("name") else "path", "group", "version", "protocol"))
        if not all(isinstance(f, str) for f in (name, group, version, protocol)):
            raise BadEntry(f"service {key!r}: name, group, version or protocol is not a string")
        port = info.get("port", -1)
        if not isinstance(port, int) or isinstance(port, bool):
            raise BadEntry(f"service {key!r}: port {port!r} is not a number")
        found.append(Service(str(name), str(group), str(version), str(protocol), port,
                             _strings(info.get("params"), "params")))
    return tuple(found)


class AppMatcher:
    """Which instances (and ports) a consumer of ``interface`` uses."""

    def __init__(self, interface: str, protocol: str, groups: frozenset[str] | None,
                 versions: frozenset[str] | None) -> None:
        self.interface, self.protocol = interface, protocol
        self.groups, self.versions = groups, versions  # None: any

    def matches(self, service: Service) -> bool:
        return (service.name == self.interface and service.protocol == self.protocol
                and (self.groups is None or service.group in self.groups)
                and (self.versions is None or service.version in self.versions)
                and service.params.get("enabled", "true") != "false"
                and service.params.get("disabled") != "true")

    def endpoints(self, inst: Instance, services: Sequence[Service] | None) -> list[Endpoint]:
        """``services``: the revision's metadata, or None for local storage (not filtered)."""
        base = {"application": inst.app, "revision": inst.revision}
        if services is None:
            port = inst.ports.get(self.protocol) if inst.ports else inst.port
            if port is None:  # its dubbo.endpoints list other protocols only
                return []
            return [Endpoint(inst.host, port, _weight(inst.metadata, {}), base)]
        found = []
        for service in services:
            if not self.matches(service):
                continue
            port = service.port if service.port > 0 else inst.ports.get(self.protocol, inst.port)
            meta = dict(base)
            meta.update((k, v) for k, v in (("version", service.version),
                                            ("group", service.group)) if v)
            meta.update((k, service.params[k]) for k in _PARAMS if service.params.get(k))
            found.append(Endpoint(inst.host, port, _weight(inst.metadata, service.params), meta))
        return found


def _weight(instance: Mapping[str, str], params: Mapping[str, str]) -> int:
    value = params.get("weight", instance.get("weight", DEFAULT_WEIGHT))
    try:
        return max(1, int(value))
    except ValueError:
        raise BadEntry(f"weight {value!r} is not a number") from None
