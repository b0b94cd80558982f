"""local_zone: endpoints of the proxy's own zone take the traffic while one of them is healthy."""

from __future__ import annotations

from collections import Counter

from mesh._keys import RequestKeys
from mesh.cluster import UpstreamCluster
from mesh.codec import Headers
from mesh.config import Endpoint, dump, parse

CONFIG = {
    "listeners": [{"name": "l", "address": "127.0.0.1:1", "cluster": "c"}],
    "clusters": [{"name": "c", "local_zone": "a", "endpoints": [
        {"address": "127.0.0.1:10", "metadata": {"zone": "a"}},
        {"address": "127.0.0.1:11", "metadata": {"zone": "a"}},
        {"address": "127.0.0.1:12", "metadata": {"zone": "b"}, "weight": 100},
    ]}],
}
KEYS = RequestKeys(Headers(1, []))


def _spread(cluster: UpstreamCluster, n: int = 300) -> Counter[int]:
    return Counter(cluster.pick(KEYS, None).port for _ in range(n))


def test_local_zone_takes_the_traffic_and_falls_back_when_it_is_ejected() -> None:
    config = parse(CONFIG, "zones.yaml")
    cluster = UpstreamCluster(config.clusters[0])
    assert set(_spread(cluster)) == {10, 11}
    for endpoint in cluster.endpoints[:2]:
        endpoint.drain()  # ejected for its ejection time
    assert set(_spread(cluster)) == {12}


def test_discovered_endpoints_get_zone_preference_too() -> None:
    config = parse(CONFIG, "zones.yaml")
    cluster = UpstreamCluster(config.clusters[0])
    cluster.update_endpoints([Endpoint("127.0.0.1", 20, 1, {"zone": "b"}),
                              Endpoint("127.0.0.1", 21, 1, {"zone": "a"})])
    assert set(_spread(cluster)) == {21}
    cluster.update_endpoints([Endpoint("127.0.0.1", 20, 1, {"zone": "b"})])  # none local
    assert set(_spread(cluster)) == {20}


def test_dump_parses_back_with_discovery_and_local_zone() -> None:
    config = parse({**CONFIG, "clusters": [
        {"name": "c", "local_zone": "a", "discovery": {"source": "dns",
                                                        "config": {"name": "x", "port": 1}}}]},
        "zones.yaml")
    assert parse(dump(config), "zones.yaml") == config
