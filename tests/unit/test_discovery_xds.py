"""The xds source: ClusterLoadAssignment -> endpoints, and ACK/NACK on a real grpcio ADS server."""

from __future__ import annotations

import time
from concurrent import futures

import pytest
import trio

grpc = pytest.importorskip("grpc")
pytest.importorskip("envoy.service.discovery.v3")

from envoy.config.endpoint.v3 import endpoint_pb2  # noqa: E402
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402

from mesh.config import Endpoint  # noqa: E402
from mesh.discovery.xds import EDS_TYPE, XdsSource, endpoints_of  # noqa: E402


def _assignment(*endpoints: tuple[str, int, int, int], priority: int = 0,
                zone: str = "") -> endpoint_pb2.ClusterLoadAssignment:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name="echo")
    group = cla.endpoints.add()
    group.priority = priority
    group.locality.zone = zone
    for host, port, weight, health in endpoints:
        lb = group.lb_endpoints.add()
        lb.endpoint.address.socket_address.address = host
        lb.endpoint.address.socket_address.port_value = port
        lb.health_status = health
        if weight:
            lb.load_balancing_weight.value = weight
    return cla


def test_weights_health_priority_and_locality() -> None:
    cla = _assignment(("127.0.0.1", 8080, 3, 1), ("127.0.0.2", 8080, 0, 0),
                      ("127.0.0.3", 8080, 1, 2), zone="z1")  # 2 = UNHEALTHY: left out
    backup = cla.endpoints.add()
    backup.priority = 1
    lb = backup.lb_endpoints.add()
    lb.endpoint.address.socket_address.address = "127.0.0.9"
    lb.endpoint.address.socket_address.port_value = 9
    assert endpoints_of(cla) == [Endpoint("127.0.0.1", 8080, 3, {"zone": "z1"}),
                                 Endpoint("127.0.0.2", 8080, 1, {"zone": "z1"})]


@pytest.mark.parametrize("host,port,why", [("not an ip", 80, "malformed IP"),
                                           ("127.0.0.1", 0, "port 0")])
def test_malformed_endpoint_refuses_the_resource(host: str, port: int, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        endpoints_of(_assignment(("127.0.0.1", 80, 1, 0), (host, port, 1, 0)))


@pytest.mark.parametrize("config,why", [({}, "address"), ({"address": "x:1"}, "cluster_name"),
                                        ({"address": "x:1", "cluster_name": "c", "nope": 1},
                                         "unknown settings")])
def test_bad_settings(config: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        XdsSource(config)


def test_ack_nack_keeps_last_good_version() -> None:
    """grpcio (a real gRPC server) plays the control plane; the source speaks our own h2c."""
    requests: list[discovery_pb2.DiscoveryRequest] = []

    def response(version: str, host: str) -> discovery_pb2.DiscoveryResponse:
        packed = any_pb2.Any()
        packed.Pack(_assignment((host, 8080, 1, 0)))
        return discovery_pb2.DiscoveryResponse(version_info=version, resources=[packed],
                                               type_url=EDS_TYPE, nonce="n" + version)

    class Ads(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
        def StreamAggregatedResources(self, stream, context):  # type: ignore[no-untyped-def]
            for version, host in (("1", "127.0.0.1"), ("2", "bad host"), ("3", "127.0.0.3")):
                requests.append(next(stream))
                yield response(version, host)
            requests.append(next(stream))
            time.sleep(0.2)

    server = grpc.server(futures.ThreadPoolExecutor(2))
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(Ads(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    published: list[list[Endpoint]] = []
    reports: list[str] = []
    try:
        async def main() -> None:
            source = XdsSource({"address": f"127.0.0.1:{port}", "cluster_name": "echo",
                                "node_id": "unit"})
            with trio.move_on_after(10), pytest.raises(Exception, match="gRPC status 0"):
                await source.run(lambda e: published.append(list(e)), reports.append)

        trio.run(main)
    finally:
        server.stop(1)
    answers = [(r.version_info, r.response_nonce, r.error_detail.message) for r in requests]
    assert answers[0] == ("", "", "")
    assert requests[0].node.id == "unit" and list(requests[0].resource_names) == ["echo"]
    assert answers[1] == ("1", "n1", "")  # ACK
    assert answers[2][:2] == ("1", "n2") and "malformed IP" in answers[2][2]  # NACK, v1 kept
    assert answers[3] == ("3", "n3", "")
    assert [[e.host for e in s] for s in published] == [["127.0.0.1"], ["127.0.0.3"]]
    assert any("NACKed version '2'" in r and "keeping version '1'" in r for r in reports)
