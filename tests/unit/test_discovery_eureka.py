"""Contract tests of the eureka endpoint source (mesh/discovery/eureka.py).

Against the documented payloads (tests/golden/registries/eureka_apps*.json, written after the
JSON shape of Eureka's REST API documentation) and against a test Eureka
(tests/peers/registries/eureka_server.py) into which the official Python client,
py-eureka-client, registers, renews, changes status and cancels instances, while the source
runs under trio.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import trio

from mesh.config import Endpoint
from mesh.discovery._http import Keeper
from mesh.discovery.eureka import EurekaSource, reconcile_hash
from tests.peers.registries._server import golden, keys_of
from tests.peers.registries.eureka_server import EurekaServer
from tests.peers.registries.harness import AsyncioThread, Watch, record_logs

try:
    from py_eureka_client import eureka_client
except ImportError:
    eureka_client = None
needs_client = pytest.mark.skipif(
    eureka_client is None, reason="needs py-eureka-client: pip install -e '.[test]'")

FAST = {"refresh": "30ms", "retry": "20ms", "timeout": "2s"}


def keeper() -> Keeper:
    return Keeper("eureka test", True, lambda _: None, lambda _: None)


def source(**config: Any) -> EurekaSource:
    return EurekaSource({"url": "http://127.0.0.1:8761/eureka/", "app": "order-service", **config})


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="url is required"):
        EurekaSource({"app": "x"})
    with pytest.raises(ValueError, match="give app .* or vip_address"):
        EurekaSource({"url": "127.0.0.1:8761"})
    with pytest.raises(ValueError, match="give app .* or vip_address"):
        source(vip_address="order-service")
    with pytest.raises(ValueError, match=r"unknown settings \['aap'\]"):
        source(aap="x")
    with pytest.raises(ValueError, match="refresh"):
        source(refresh="often")
    with pytest.raises(ValueError, match="secure_port must be true or false"):
        source(secure_port="yes")
    src = source(url="http://user:pw@10.0.0.1:8761/eureka/,http://10.0.0.2:8761/eureka")
    assert [(s.host, s.path, s.auth) for s in src.servers.servers] == [
        ("10.0.0.1", "/eureka", "user:pw"), ("10.0.0.2", "/eureka", None)]
    assert src.app == "ORDER-SERVICE" and src.refresh == 30.0


def test_documented_payloads_full_then_delta() -> None:
    src, k = source(), keeper()
    registry = src.full(golden("eureka_apps.json"), k)
    assert reconcile_hash(registry) == "DOWN_1_UP_2_" == golden("eureka_apps.json")["applications"][
        "apps__hashcode"]
    assert src.endpoints(registry, k) == [
        Endpoint("10.0.0.7", 8080, 1, {"management.port": "8080", "zone": "zone-a",
                                       "eureka.instance_id": "10.0.0.7:order-service:8080"}),
        # AmazonInfo: the zone is the availability zone; Eureka's "@class" marker is dropped
        Endpoint("10.0.0.8", 8080, 1, {"zone": "us-east-1c", "eureka.instance_id": "i-0a1b2c3d"}),
    ]
    secure = source(secure_port=True).endpoints(registry, k)
    assert [(e.host, e.port) for e in secure] == [("10.0.0.7", 8443), ("10.0.0.8", 8080)]
    assert source(app=None, vip_address="billing").endpoints(registry, k) == []  # DOWN

    # ADDED 10.0.0.10, DELETED 10.0.0.8, MODIFIED billing DOWN -> UP; the hashes agree
    assert src.apply_delta(registry, golden("eureka_apps_delta.json"), k)
    assert reconcile_hash(registry) == "UP_3_"
    assert [(e.host, e.metadata.get("zone")) for e in src.endpoints(registry, k)] == [
        ("10.0.0.10", "zone-b"), ("10.0.0.7", "zone-a")]
    assert [e.port for e in source(app=None, vip_address="billing").endpoints(registry, k)] == [9090]

    # a delta whose hash disagrees with the result: the caller must fetch everything again
    registry = src.full(golden("eureka_apps.json"), k)
    wrong = copy.deepcopy(golden("eureka_apps_delta.json"))
    wrong["applications"]["apps__hashcode"] = "UP_4_"
    assert not src.apply_delta(registry, wrong, k)


def test_single_instance_written_as_an_object() -> None:
    """Eureka's XStream JSON writes a one-element list as the element itself."""
    apps = golden("eureka_apps.json")
    order = apps["applications"]["application"][0]
    single = {"applications": {**apps["applications"], "application": {
        **order, "instance": order["instance"][0]}}}
    src = source()
    assert [e.host for e in src.endpoints(src.full(single, keeper()), keeper())] == ["10.0.0.7"]


def test_bad_instances_are_skipped_and_logged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    logs = record_logs(monkeypatch)
    good = golden("eureka_apps.json")["applications"]["application"][0]["instance"][0]
    bad = [
        {**good, "instanceId": "b1", "port": {"$": "http", "@enabled": "true"}},
        {**good, "instanceId": "b2", "ipAddr": ""},
        {**good, "instanceId": "b3", "ipAddr": "0.0.0.0"},
        {**good, "instanceId": "b4", "metadata": "zone=a"},
        {k: v for k, v in good.items() if k not in ("instanceId", "hostName")},
        "not an instance",
    ]
    answer = {"applications": {"apps__hashcode": "", "application": [
        {"name": "ORDER-SERVICE", "instance": [good, *bad]}]}}
    src, k = source(), keeper()
    for _ in range(3):
        assert [e.host for e in src.endpoints(src.full(answer, k), k)] == ["10.0.0.7"]
    assert len(logs.named("bad_registry_entry")) == 6


@needs_client
def test_server_answers_in_the_documented_shape() -> None:
    loop = AsyncioThread()
    try:
        with EurekaServer() as server:
            client = eureka_client.EurekaClient(
                eureka_server=f"http://{server.address}/eureka", app_name="order-service",
                instance_ip="10.0.0.7", instance_host="10.0.0.7", instance_port=8080,
                should_discover=False, metadata={"zone": "zone-a"})
            loop.run(client.start())

            async def get() -> Any:
                return (await source(url=f"http://{server.address}/eureka/").servers.request(
                    "GET", "/apps", headers={"Accept": "application/json"})).json()

            answer = trio.run(get)
            loop.run(client.stop())
    finally:
        loop.close()
    documented = golden("eureka_apps.json")
    instance = keys_of(documented)["applications"]["application"][0]["instance"][0]
    got = keys_of(answer)["applications"]["application"][0]["instance"][0]
    assert {k: v for k, v in got.items() if k != "dataCenterInfo"} == {
        k: v for k, v in instance.items() if k != "dataCenterInfo"}
    assert set(keys_of(answer)["applications"]) == {"versions__delta", "apps__hashcode", "application"}


@needs_client
def test_official_client_registers_and_the_source_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register, a second instance (a delta), OUT_OF_SERVICE and back (MODIFIED), a cancel
    (DELETED), an instance no delta carries (the hash mismatch: a full fetch), the registry down
    and back with a malformed instance."""
    logs = record_logs(monkeypatch)
    server = EurekaServer().start()
    loop = AsyncioThread()
    src = EurekaSource({"url": f"http://{server.address}/eureka/", "app": "order-service", **FAST})
    watch = Watch(src)

    def client(port: int, **kw: Any) -> Any:
        return eureka_client.EurekaClient(
            eureka_server=f"http://{server.address}/eureka", app_name="order-service",
            instance_ip="127.0.0.1", instance_host="localhost", instance_port=port,
            should_discover=False, **kw)

    a, b = client(20001, metadata={"zone": "zone-a"}), client(20002)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch.run)
            await loop.call(a.start)
            await watch.until(lambda: watch.addresses() == ["127.0.0.1:20001"], "the first instance")
            assert watch.last[0].metadata["zone"] == "zone-a"
            assert watch.last[0].metadata["eureka.instance_id"] == "127.0.0.1:order-service:20001"
            await loop.call(a.send_heartbeat)  # a renewal changes nothing

            full = src.full_fetches
            await loop.call(b.start)
            await watch.until(lambda: len(watch.last) == 2, "the second instance")
            await loop.call(lambda: b.status_update("OUT_OF_SERVICE"))
            await watch.until(lambda: watch.addresses() == ["127.0.0.1:20001"], "out of service")
            await loop.call(lambda: b.status_update("UP"))
            await watch.until(lambda: len(watch.last) == 2, "back in service")
            await loop.call(a.stop)  # DOWN, then cancel
            await watch.until(lambda: watch.addresses() == ["127.0.0.1:20002"], "cancelled")
            assert src.full_fetches == full and server.delta_fetches > 0  # deltas did it

            unannounced = copy.deepcopy(server.apps["ORDER-SERVICE"]["127.0.0.1:order-service:20002"])
            unannounced.update(instanceId="127.0.0.1:order-service:20003", port={"$": 20003, "@enabled": "true"})
            server.add_unannounced("order-service", unannounced)
            await watch.until(lambda: len(watch.last) == 2, "the instance no delta carried")
            assert src.full_fetches == full + 1  # the hash mismatch made a full fetch

            published = len(watch.published)
            await trio.to_thread.run_sync(server.stop)
            report = await watch.until_reported("failed", "keeping the 2 last known endpoints")
            assert f"eureka {server.address} ORDER-SERVICE" in report
            assert len(watch.published) == published

            bad = {**unannounced, "instanceId": "bad-1", "port": {"$": "http", "@enabled": "true"}}
            server.add_raw_instance("order-service", bad)
            await trio.to_thread.run_sync(server.start)
            await watch.until_reported("answering again")
            fetches = server.delta_fetches
            await watch.until(lambda: server.delta_fetches >= fetches + 3, "three more deltas")
            assert watch.addresses() == ["127.0.0.1:20002", "127.0.0.1:20003"]
            await loop.call(b.stop)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
        loop.close()
    assert len(logs.named("registry_failed")) == 1
    bad_logged = logs.named("bad_registry_entry")
    assert len(bad_logged) == 1 and "port" in bad_logged[0]["error"]
