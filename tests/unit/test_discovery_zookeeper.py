"""Dubbo's consumer matching over ZooKeeper provider URLs (mesh/discovery/zookeeper.py).

The URLs are in the form Dubbo and sofa-rpc-node register (URL-encoded children of
/dubbo/<interface>/providers); the real-registry test is tests/integration/test_discovery_zk.py.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from mesh.cluster import UpstreamCluster
from mesh.config import Cluster, Discovery, Endpoint
from mesh.discovery.zookeeper import ZooKeeperDubboSource, parse_provider

IFACE = "com.rpcmesh.test.EchoService"


def child(host: str = "127.0.0.1", port: int = 20880, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"interface": IFACE, **params}.items())
    return quote(f"dubbo://{host}:{port}/{IFACE}?{query}", safe="")


def source(**config: object) -> ZooKeeperDubboSource:
    return ZooKeeperDubboSource({"address": "127.0.0.1:2181", "interface": IFACE, **config})


def test_parse_provider_url() -> None:
    protocol, host, port, params = parse_provider(child(port=20881, version="1.0.0", weight="50"))
    assert (protocol, host, port) == ("dubbo", "127.0.0.1", 20881)
    assert params["version"] == "1.0.0" and params["interface"] == IFACE


def test_dubbo_consumer_matching() -> None:
    children = [
        child(port=1, version="1.0.0"),
        child(port=2, version="2.0.0"),
        child(port=3, version="1.0.0", group="canary"),
        child(port=4, version="1.0.0", enabled="false"),
        child(port=5, version="1.0.0", category="consumers"),
        quote(f"rest://127.0.0.1:6/{IFACE}?interface={IFACE}", safe=""),
        child(port=7, version="1.0.0", weight="250", application="echo"),
    ]
    assert [e.port for e in source(version="1.0.0").endpoints(children)] == [1, 7]
    assert [e.port for e in source().endpoints(children)] == [1, 2, 7]
    assert [e.port for e in source(group="canary").endpoints(children)] == [3]
    assert [e.port for e in source(group="*", version="1.0.0").endpoints(children)] == [1, 3, 7]
    assert [e.port for e in source(version="2.0.0,1.0.0", group="").endpoints(children)] == [1, 2, 7]
    seven = source(version="1.0.0").endpoints(children)[1]
    assert seven.weight == 250 and seven.metadata["application"] == "echo"
    assert source().endpoints([child(port=8)])[0].weight == 100  # Dubbo's default weight


def test_bad_entries_are_skipped_and_reported_once(capsys: pytest.CaptureFixture[str]) -> None:
    src = source()
    bad = ["not a url", quote("dubbo://:20880/x", safe=""), child(host="0.0.0.0", port=9),
           child(port=10, weight="heavy")]
    assert src.endpoints([*bad, child(port=11)]) == [Endpoint("127.0.0.1", 11, 100, {})]
    assert src.endpoints(bad) == []
    logged = capsys.readouterr().out
    assert logged.count("bad_registry_entry") == 4  # each bad entry once, not on every update


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="interface is required"):
        ZooKeeperDubboSource({"address": "127.0.0.1:2181"})
    with pytest.raises(ValueError, match="unknown settings"):
        source(interfce="x")
    with pytest.raises(ValueError, match="session_timeout"):
        source(session_timeout="soon")


def test_empty_protection_keeps_the_last_endpoints() -> None:
    published: list[list[Endpoint]] = []
    src = source()
    src._publish(published.append, [child(port=1)])
    src._publish(published.append, [])
    assert [[e.port for e in p] for p in published] == [[1]]
    unprotected = source(empty_protection=False)
    unprotected._publish(published.append, [child(port=1)])
    unprotected._publish(published.append, [])
    assert published[-1] == []


def test_cluster_swaps_endpoints_and_keeps_known_ones() -> None:
    cluster = UpstreamCluster(Cluster("c", (), discovery=Discovery("zookeeper", {})))
    assert cluster.endpoints == () and cluster.describe()["discovery"] == "waiting"
    cluster.update_endpoints([Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2)])
    first = cluster.endpoints[0]
    first.active_requests = 3
    cluster.update_endpoints([Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 3, 5)])
    assert cluster.endpoints[0] is first and cluster.endpoints[0].active_requests == 3
    assert [(e.port, e.weight) for e in cluster.endpoints] == [(1, 1), (3, 5)]
    assert cluster.describe()["discovery"] == "2 endpoints"
