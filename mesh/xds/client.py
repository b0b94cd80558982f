"""Listeners, routes and clusters from an xDS management server: one ADS stream, SotW.

Subscribes to every Listener (LDS) and Cluster (CDS) the server has for this node, and to
the RouteConfigurations (RDS) the listeners name. Each response is tried as a whole new
config: the file's own listeners and clusters plus every dynamic resource, translated
(mesh/xds/translate.py) and parsed like a file. If that config is good and the runtime
takes it (a new listener may fail to bind), the response is ACKed; otherwise it is NACKed
with the reason and nothing changes. A listener whose route configuration has not arrived
yet waits (as Envoy's listener warming) and comes in with the response that completes it. A
route naming a cluster not known (yet) answers UNAVAILABLE (503) until the cluster comes, as
in Envoy. Clusters of type EDS get their endpoints from the ``xds`` discovery source, over a
stream of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import structlog
import trio

from mesh.config import Config, ConfigError, Xds, dump, parse
from mesh.discovery._grpc_stream import GrpcStream

from .translate import TranslationError, cluster, listener, route_config

__all__ = ["CDS", "LDS", "RDS", "XdsConfigClient"]

log = structlog.get_logger("mesh.xds")

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
_ADS_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
_INVALID_ARGUMENT = 3

Resources = dict[str, dict[str, Any]]  # type URL -> name -> decoded message


def _message_class(type_url: str) -> Any:
    from envoy.config.cluster.v3 import cluster_pb2  # type: ignore[import-untyped]
    from envoy.config.listener.v3 import listener_pb2  # type: ignore[import-untyped]
    from envoy.config.route.v3 import route_pb2  # type: ignore[import-untyped]

    return {LDS: listener_pb2.Listener, RDS: route_pb2.RouteConfiguration,
            CDS: cluster_pb2.Cluster}[type_url]


class XdsConfigClient:
    """Keeps a runtime's config in step with a management server."""

    def __init__(self, base: Config, apply: Callable[[Config], None],
                 known_protocols: Collection[str], known_filters: Collection[str]) -> None:
        assert base.xds is not None
        self.settings: Xds = base.xds
        self.base = dump(base, secrets=True)  # the file's own part, in the file's form
        self.apply = apply
        self.known_protocols = known_protocols
        self.known_filters = known_filters
        self.accepted: Resources = {LDS: {}, RDS: {}, CDS: {}}
        self.versions: dict[str, str] = {}
        self.nonces: dict[str, str] = {}
        self.route_names: list[str] = []
        self.waiting: list[str] = []  # listeners not complete yet, and why
        self.state = "connecting"

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    async def run(self) -> None:
        """Streams until cancelled; a lost stream is opened again after a backoff."""
        backoff = 0.5
        while True:
            try:
                await self._stream()
            except Exception as exc:  # GrpcStreamError, OSError...: never take the worker down
                self.state = f"stream lost ({exc}); keeping the last config; retry in {backoff:g}s"
                log.warning("xds_stream_lost", server=self.address, error=str(exc),
                            retry_in=backoff)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _stream(self) -> None:
        from envoy.service.discovery.v3 import discovery_pb2  # type: ignore[import-untyped]

        stream = await GrpcStream.open(self.settings.host, self.settings.port, _ADS_PATH)
        try:
            for type_url in (CDS, LDS):
                await stream.send(self._request(discovery_pb2, type_url, []))
            if self.route_names:
                await stream.send(self._request(discovery_pb2, RDS, self.route_names))
            self.state = "connected"
            while True:
                response = discovery_pb2.DiscoveryResponse.FromString(await stream.receive())
                for request in self._answer(discovery_pb2, response):
                    await stream.send(request)
        finally:
            stream.close()

    def _request(self, pb: Any, type_url: str, names: list[str], nonce: str | None = None,
                 error: str | None = None) -> bytes:
        request = pb.DiscoveryRequest(type_url=type_url, resource_names=names,
                                      version_info=self.versions.get(type_url, ""),
                                      response_nonce=self.nonces.get(type_url, "")
                                      if nonce is None else nonce)
        request.node.id = self.settings.node_id
        request.node.cluster = self.settings.node_cluster
        request.node.user_agent_name = "rpcmesh"
        if error is not None:
            request.error_detail.code = _INVALID_ARGUMENT
            request.error_detail.message = error
        return bytes(request.SerializeToString())

    def _answer(self, pb: Any, response: Any) -> list[bytes]:
        """The requests answering ``response``: its ACK or NACK, and any new RDS subscription."""
        kind = response.type_url
        names = self.route_names if kind == RDS else []
        try:
            if kind not in self.accepted:
                raise TranslationError(f"type {kind} was not asked for")
            candidate = dict(self.accepted)
            candidate[kind] = self._decode(kind, response.resources)
            config = self.build(candidate)
            self.apply(config)
        except (TranslationError, ConfigError, ValueError) as exc:
            return [self._nack(pb, response, names, str(exc))]
        except Exception as exc:  # StartupError (a listener that cannot bind), or a bug
            if type(exc).__name__ != "StartupError":
                log.exception("xds_apply_failed", server=self.address, error=repr(exc))
            return [self._nack(pb, response, names, str(exc))]
        self.accepted = candidate
        self.versions[kind] = response.version_info
        self.nonces[kind] = response.nonce
        self.state = (f"versions {self._versions()}" +
                      (f"; waiting: {'; '.join(self.waiting)}" if self.waiting else ""))
        log.info("xds_applied", server=self.address, type=kind.rsplit(".", 1)[1],
                 version=response.version_info, waiting=self.waiting or None)
        requests = [self._request(pb, kind, names)]
        wanted = sorted({name for _, name in self._listeners(candidate) if name})
        if kind == LDS and wanted != self.route_names:
            self.route_names = wanted
            requests.append(self._request(pb, RDS, wanted))
        return requests

    def _nack(self, pb: Any, response: Any, names: list[str], reason: str) -> bytes:
        kind = response.type_url
        log.warning("xds_nack", server=self.address, type=kind.rsplit(".", 1)[-1],
                    version=response.version_info, error=reason,
                    kept_version=self.versions.get(kind, ""))
        self.state = (f"NACKed {kind.rsplit('.', 1)[-1]} version {response.version_info!r} "
                      f"({reason}); keeping {self._versions()}")
        return self._request(pb, kind, names, nonce=response.nonce, error=reason)

    def _versions(self) -> str:
        return ", ".join(f"{t.rsplit('.', 1)[1]} {v!r}" for t, v in sorted(self.versions.items()))

    def _decode(self, kind: str, resources: Any) -> dict[str, Any]:
        message_class = _message_class(kind)
        decoded: dict[str, Any] = {}
        for packed in resources:
            message = message_class()
            if packed.type_url != kind or not packed.Unpack(message):
                raise TranslationError(f"a resource of type {packed.type_url} in a "
                                       f"{kind.rsplit('.', 1)[1]} response")
            if not message.name:
                raise TranslationError("a resource without a name")
            decoded[message.name] = message
        return decoded

    def _listeners(self, resources: Resources) -> list[tuple[dict[str, Any], str | None]]:
        return [listener(resource) for resource in resources[LDS].values()]

    def build(self, resources: Resources) -> Config:
        """The whole config: the file's part and every complete dynamic resource."""
        clusters = [dict(c) for c in self.base["clusters"]]
        clusters += [cluster(resource, self.address, self.settings.node_id)
                     for resource in resources[CDS].values()]
        known = {c["name"] for c in clusters}
        listeners = list(self.base["listeners"])
        self.waiting = []
        for spec, route_name in self._listeners(resources):
            if route_name is not None:
                routes = resources[RDS].get(route_name)
                if routes is None:
                    self.waiting.append(f"listener {spec['name']!r} waits for route config "
                                        f"{route_name!r}")
                    continue
                spec["routes"] = route_config(routes)
            missing = sorted(_clusters_named(spec) - known)
            if missing:  # as in Envoy, its routes to them answer 503 until they come
                self.waiting.append(f"listener {spec['name']!r}: routes to clusters not known "
                                    f"yet answer 503: {missing}")
            listeners.append(spec)
        data = dict(self.base, listeners=listeners, clusters=clusters)
        source = f"xds {self.address} ({self._versions() or 'first response'})"
        return parse(data, source, known_protocols=self.known_protocols,
                     known_filters=self.known_filters, unknown_clusters=True)


def _clusters_named(spec: dict[str, Any]) -> set[str]:
    names = {spec["cluster"]} if "cluster" in spec else set()
    for route in spec.get("routes", ()):
        if "cluster" in route:
            names.add(route["cluster"])
        names.update(w["cluster"] for w in route.get("weighted_clusters", ()))
    return names
