"""Endpoints from an xDS control plane: EDS over one ADS stream (state of the world).

Settings (cluster ``discovery: {source: xds, config: {...}}``): ``address`` (required,
``host:port`` of the management server, h2c), ``cluster_name`` (required: the
ClusterLoadAssignment to subscribe to, as Envoy's ``eds_cluster_config.service_name``),
``node_id`` (``rpcmesh``), ``node_cluster`` (``rpcmesh``), ``connect_timeout`` (``5s``).

The protocol, as Envoy speaks it (envoy/api/envoy/service/discovery/v3/discovery.proto):

- a DiscoveryRequest names the node, the type and the resources;
- every DiscoveryResponse is answered: an ACK repeats its ``version_info`` and ``nonce``;
  a NACK carries its ``nonce``, the version last accepted and an ``error_detail``. A NACKed
  response changes nothing: the endpoints of the last good version keep serving;
- the stream runs on rpcmesh's own HTTP/2 client (mesh/discovery/_grpc_stream.py), the
  messages are xds-protos' classes (protobuf).

A ClusterLoadAssignment becomes the cluster's endpoints: every lb_endpoint of priority 0
whose health is HEALTHY or UNKNOWN, ``load_balancing_weight`` as the weight (1 if unset),
the locality as ``region``/``zone``/``sub_zone`` metadata and the endpoint's
``filter_metadata`` strings as further metadata. An endpoint must be a socket address with
an IP address and a port in 1-65535; a resource with any other is refused (NACKed) whole,
as Envoy refuses it.

Listeners, routes and clusters from LDS/RDS/CDS are not taken yet (docs/discovery.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import structlog

from mesh.config import Endpoint
from mesh.config._values import parse_duration
from mesh.discovery import Publish, Report
from mesh.discovery._grpc_stream import GrpcStream, GrpcStreamError

__all__ = ["EDS_TYPE", "XdsSource", "endpoints_of"]

log = structlog.get_logger("mesh.discovery")

EDS_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
_ADS_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
_SETTINGS = ("address", "cluster_name", "node_id", "node_cluster", "connect_timeout")
_USABLE_HEALTH = (0, 1)  # UNKNOWN, HEALTHY (envoy.config.core.v3.HealthStatus)
_INVALID_ARGUMENT = 3  # google.rpc.Code


class XdsSource:
    def __init__(self, config: Mapping[str, Any]) -> None:
        unknown = sorted(set(config) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {', '.join(_SETTINGS)}")
        address, name = config.get("address"), config.get("cluster_name")
        if not isinstance(address, str) or address.rpartition(":")[2].isdigit() is False:
            raise ValueError("address is required: host:port of the xDS management server")
        if not isinstance(name, str) or not name:
            raise ValueError("cluster_name is required: the ClusterLoadAssignment to follow")
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.cluster_name = name
        self.node_id = str(config.get("node_id", "rpcmesh"))
        self.node_cluster = str(config.get("node_cluster", "rpcmesh"))
        try:
            self.connect_timeout = parse_duration(config.get("connect_timeout", 5.0))
        except ValueError as exc:
            raise ValueError(f"connect_timeout: {exc}") from None
        self.accepted_version = ""  # the last version ACKed
        self.nacks = 0

    async def run(self, publish: Publish, report: Report) -> None:
        """One ADS stream until it ends (the runtime starts it again after a backoff)."""
        from envoy.service.discovery.v3 import discovery_pb2  # type: ignore[import-untyped]

        where = f"{self.host}:{self.port}"
        try:
            stream = await GrpcStream.open(self.host, self.port, _ADS_PATH, self.connect_timeout)
        except Exception as exc:
            report(f"xds {where} unreachable ({exc}): keeping the last endpoints")
            raise
        try:
            # as Envoy: a new stream names the version last accepted (no nonce yet)
            await stream.send(self._request(discovery_pb2, self.accepted_version
                                            ).SerializeToString())
            while True:
                try:
                    raw = await stream.receive()
                except GrpcStreamError as exc:
                    report(f"xds {where} stream ended ({exc}): keeping the last endpoints")
                    raise
                response = discovery_pb2.DiscoveryResponse.FromString(raw)
                await stream.send(self._answer(discovery_pb2, response, publish, report))
        finally:
            stream.close()

    def _request(self, pb: Any, version: str = "", nonce: str = "",
                 error: str | None = None) -> Any:
        from google.rpc import status_pb2  # type: ignore[import-untyped]

        request = pb.DiscoveryRequest(version_info=version, response_nonce=nonce,
                                      type_url=EDS_TYPE, resource_names=[self.cluster_name])
        request.node.id = self.node_id
        request.node.cluster = self.node_cluster
        request.node.user_agent_name = "rpcmesh"
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=_INVALID_ARGUMENT, message=error))
        return request

    def _answer(self, pb: Any, response: Any, publish: Publish, report: Report) -> bytes:
        """ACK (and publish) a good response, NACK a bad one; the request to send back."""
        where = f"{self.host}:{self.port}"
        problem: str | None
        endpoints: list[Endpoint] | None
        if response.type_url != EDS_TYPE:
            problem = f"type {response.type_url} was not asked for"
            endpoints = None
        else:
            endpoints, problem = self._endpoints(response)
        if problem is not None:
            self.nacks += 1
            log.warning("xds_nack", server=where, version=response.version_info, error=problem,
                        kept_version=self.accepted_version)
            report(f"xds {where}: NACKed version {response.version_info!r} ({problem}); "
                   f"keeping version {self.accepted_version!r}")
            return bytes(self._request(pb, self.accepted_version, response.nonce,
                                       problem).SerializeToString())
        self.accepted_version = response.version_info
        if endpoints is not None:
            publish(endpoints)
            report(f"xds {where}: version {response.version_info!r}, "
                   f"{len(endpoints)} endpoints")
        return bytes(self._request(pb, response.version_info, response.nonce).SerializeToString())

    def _endpoints(self, response: Any) -> tuple[list[Endpoint] | None, str | None]:
        from envoy.config.endpoint.v3 import endpoint_pb2  # type: ignore[import-untyped]

        found: list[Endpoint] | None = None
        for resource in response.resources:
            if resource.type_url != EDS_TYPE:
                return None, f"a resource of type {resource.type_url} in an EDS response"
            assignment = endpoint_pb2.ClusterLoadAssignment()
            if not resource.Unpack(assignment):
                return None, "a resource that does not decode"
            if assignment.cluster_name != self.cluster_name:
                continue  # not ours (SotW may send more than asked)
            try:
                found = endpoints_of(assignment)
            except ValueError as exc:
                return None, f"ClusterLoadAssignment {assignment.cluster_name!r}: {exc}"
        return found, None


def endpoints_of(assignment: Any) -> list[Endpoint]:
    """The usable endpoints of a ClusterLoadAssignment; ValueError if one is malformed."""
    endpoints: list[Endpoint] = []
    for locality in assignment.endpoints:
        labels = {k: v for k, v in (("region", locality.locality.region),
                                    ("zone", locality.locality.zone),
                                    ("sub_zone", locality.locality.sub_zone)) if v}
        for lb in locality.lb_endpoints:
            address = lb.endpoint.address.socket_address
            if not lb.endpoint.address.HasField("socket_address"):
                raise ValueError("an endpoint without a socket address")
            try:
                ipaddress.ip_address(address.address)
            except ValueError:
                raise ValueError(f"malformed IP address {address.address!r}") from None
            if not 0 < address.port_value < 65536:
                raise ValueError(f"port {address.port_value} of {address.address}")
            if locality.priority != 0 or lb.health_status not in _USABLE_HEALTH:
                continue
            metadata = dict(labels)
            for section in lb.metadata.filter_metadata.values():
                for key, value in section.fields.items():
                    if value.HasField("string_value"):
                        metadata[key] = value.string_value
            weight = lb.load_balancing_weight.value if lb.HasField("load_balancing_weight") else 1
            endpoints.append(Endpoint(address.address, address.port_value, weight or 1,
                                      metadata))
    return endpoints
