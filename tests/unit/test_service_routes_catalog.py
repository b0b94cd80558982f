"""Contract tests of the service catalogs (mesh/discovery/catalog.py) that ``service_routes``
reads: Eureka's ``/apps``, Nacos's ``service/list`` (v1 and v2, paged) and Consul's
``/v1/catalog/services``.

Against the documented payloads (tests/golden/registries/: ``eureka_apps.json``,
``nacos_v{1,2}_service_list.json`` and ``consul_catalog_services.json``, written after the
examples of the registries' API documentation) and against the test registries
(tests/peers/registries/) into which the official Python clients register services.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from mesh.config._listeners import SERVICE_KEYS
from mesh.discovery._http import HttpError
from mesh.discovery.catalog import (
    Catalog,
    ConsulCatalog,
    EurekaCatalog,
    NacosCatalog,
    open_catalog,
)
from tests.peers.registries._server import golden, shape
from tests.peers.registries.consul_server import ConsulServer
from tests.peers.registries.eureka_server import EurekaServer
from tests.peers.registries.harness import AsyncioThread
from tests.peers.registries.nacos_server import NacosServer

try:
    import nacos  # nacos-sdk-python 2.x: the v1 (HTTP open API) NacosClient
except ImportError:
    nacos = None
try:
    import consul  # py-consul
except ImportError:
    consul = None
try:
    from py_eureka_client import eureka_client
except ImportError:
    eureka_client = None

pytestmark = [
    pytest.mark.filterwarnings("ignore:ssl.*:DeprecationWarning"),  # nacos-sdk-python's urllib
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning"),
]
FAST = {"timeout": "2s"}


class Skipped:
    def __init__(self) -> None:
        self.entries: list[tuple[Any, str]] = []

    def __call__(self, entry: Any, reason: str) -> None:
        self.entries.append((entry, reason))


def listed(catalog: Catalog) -> tuple[list[str], list[tuple[Any, str]]]:
    skipped = Skipped()

    async def main() -> list[str]:
        with trio.fail_after(10):  # a hang guard
            return await catalog.services(skipped)

    return trio.run(main), skipped.entries


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="no service catalog for source 'zookeeper'"):
        open_catalog("zookeeper", {})
    with pytest.raises(ValueError, match="app must not be set"):
        open_catalog("eureka", {"url": "127.0.0.1:8761", "app": "x"})
    with pytest.raises(ValueError, match="vip_address must not be set"):
        open_catalog("eureka", {"url": "127.0.0.1:8761", "vip_address": "x"})
    with pytest.raises(ValueError, match="service must not be set"):
        open_catalog("consul", {"service": "web"})
    with pytest.raises(ValueError, match="url is required"):
        open_catalog("eureka", {})
    with pytest.raises(ValueError, match=r"unknown settings \['adress'\]"):
        open_catalog("nacos", {"adress": "x"})
    with pytest.raises(ValueError, match="wait must be at most 10m"):
        open_catalog("consul", {"wait": "1h"})
    assert set(SERVICE_KEYS) == {"eureka", "nacos", "consul"}
    nacos_catalog = open_catalog("nacos", {"address": "10.0.0.5:8848", "group": "g",
                                           "namespace": "dev"})
    assert nacos_catalog.label == "nacos 10.0.0.5:8848 g namespace dev"
    assert open_catalog("consul", {"dc": "dc2"}).label == "consul 127.0.0.1:8500 dc dc2"


def test_documented_payloads() -> None:
    skipped = Skipped()
    eureka = open_catalog("eureka", {"url": "127.0.0.1:8761"})
    assert isinstance(eureka, EurekaCatalog)
    # ORDER-SERVICE has UP instances; BILLING's only instance is DOWN: not listed
    assert eureka.read(golden("eureka_apps.json"), skipped) == ["ORDER-SERVICE"]

    for api, payload in (("v1", "nacos_v1_service_list.json"), ("v2", "nacos_v2_service_list.json")):
        catalog = open_catalog("nacos", {"address": "127.0.0.1:8848", "api": api})
        assert isinstance(catalog, NacosCatalog)
        count, names = catalog.read(golden(payload))
        assert names == ["nacos.test.1", "nacos.test.2"] and count in (148, 2)

    consul_catalog = open_catalog("consul", {})
    assert isinstance(consul_catalog, ConsulCatalog)
    assert consul_catalog.read(golden("consul_catalog_services.json"), skipped) == [
        "redis", "postgresql"]  # not consul itself
    tagged = open_catalog("consul", {"tag": "primary"})
    assert isinstance(tagged, ConsulCatalog)
    assert tagged.read(golden("consul_catalog_services.json"), skipped) == ["postgresql"]
    assert skipped.entries == []

    with pytest.raises(HttpError, match="not an applications answer"):
        eureka.read({"apps": []}, skipped)
    with pytest.raises(HttpError, match="the registry refused the query"):
        open_catalog("nacos", {"address": "x", "api": "v2"}).read(  # type: ignore[attr-defined]
            {"code": 10001, "message": "access denied", "data": None})
    with pytest.raises(HttpError, match="not a service list"):
        open_catalog("nacos", {"address": "x"}).read({"count": "2", "doms": []})  # type: ignore[attr-defined]
    with pytest.raises(HttpError, match="not a service catalog"):
        consul_catalog.read(["redis"], skipped)


def test_malformed_entries_are_skipped() -> None:
    skipped = Skipped()
    apps = golden("eureka_apps.json")
    apps["applications"]["application"] += ["not an application", {"instance": []}]
    eureka = open_catalog("eureka", {"url": "127.0.0.1:8761"})
    assert isinstance(eureka, EurekaCatalog)
    assert eureka.read(apps, skipped) == ["ORDER-SERVICE"]
    consul_catalog = open_catalog("consul", {})
    assert isinstance(consul_catalog, ConsulCatalog)
    assert consul_catalog.read({"web": ["a"], "": [], "db": "primary", "cache": [1]},
                               skipped) == ["web"]
    assert [reason for _, reason in skipped.entries] == [
        "not an application object", "no application name", "not a service name",
        "its tags are not a list of strings", "its tags are not a list of strings"]


@pytest.mark.skipif(eureka_client is None, reason="needs py-eureka-client")
def test_eureka_catalog_follows_the_official_client() -> None:
    loop = AsyncioThread()
    server = EurekaServer().start()
    try:
        catalog = open_catalog("eureka", {"url": f"http://{server.address}/eureka/", **FAST})
        assert listed(catalog) == ([], [])

        clients = []
        for app, port in (("order-service", 20001), ("billing", 20002), ("order-service", 20003)):
            client = eureka_client.EurekaClient(
                eureka_server=f"http://{server.address}/eureka", app_name=app,
                instance_ip="127.0.0.1", instance_host="127.0.0.1", instance_port=port,
                should_discover=False)
            loop.run(client.start())
            clients.append(client)
        assert listed(catalog) == (["BILLING", "ORDER-SERVICE"], [])
        loop.run(clients[1].status_update("OUT_OF_SERVICE"))  # no UP instance: not listed
        assert listed(catalog)[0] == ["ORDER-SERVICE"]
        loop.run(clients[1].status_update("UP"))
        loop.run(clients[0].stop())  # one instance of two gone: still listed
        assert listed(catalog)[0] == ["BILLING", "ORDER-SERVICE"]

        server.add_raw_application({"instance": []})
        names, skipped = listed(catalog)
        assert names == ["BILLING", "ORDER-SERVICE"]
        assert [reason for _, reason in skipped] == ["no application name"]
        for client in clients[1:]:
            loop.run(client.stop())
        assert listed(catalog)[0] == []

        server.stop()
        with pytest.raises(HttpError, match=server.address):
            listed(catalog)
    finally:
        server.stop()
        loop.close()


@pytest.mark.skipif(nacos is None, reason="needs nacos-sdk-python>=2,<3")
@pytest.mark.parametrize("api", ["v1", "v2"])
def test_nacos_catalog_pages_groups_and_namespaces(api: str) -> None:
    server = NacosServer().start()
    try:
        client = nacos.NacosClient(server.address)
        for i in range(5):
            assert client.add_naming_instance(f"svc-{i}", "127.0.0.1", 20000 + i,
                                              cluster_name="DEFAULT")
        assert client.add_naming_instance("other", "127.0.0.1", 20010, group_name="g1",
                                          cluster_name="DEFAULT")
        dev = nacos.NacosClient(server.address, namespace="dev")
        assert dev.add_naming_instance("dev-only", "127.0.0.1", 20011, cluster_name="DEFAULT")

        catalog = open_catalog("nacos", {"address": server.address, "api": api, **FAST})
        assert isinstance(catalog, NacosCatalog)
        catalog.page_size = 2  # three pages
        assert listed(catalog) == ([f"svc-{i}" for i in range(5)], [])
        assert server.seen.count(("GET", f"/nacos/{api}/ns/service/list")) == 3

        async def raw() -> Any:
            return (await catalog.source.servers.request(
                "GET", f"/{api}/ns/service/list", query={"pageNo": 1, "pageSize": 2})).json()

        assert shape(trio.run(raw)) == shape(golden(f"nacos_{api}_service_list.json"))

        in_group = open_catalog("nacos", {"address": server.address, "api": api, "group": "g1"})
        assert listed(in_group)[0] == ["other"]
        in_dev = open_catalog("nacos", {"address": server.address, "api": api,
                                        "namespace": "dev"})
        assert listed(in_dev)[0] == ["dev-only"]

        assert client.remove_naming_instance("svc-0", "127.0.0.1", 20000, cluster_name="DEFAULT")
        server.add_raw_service(42)
        names, skipped = listed(catalog)
        assert names == [f"svc-{i}" for i in range(1, 5)]
        assert skipped == [(42, "not a service name")]

        server.stop()
        with pytest.raises(HttpError, match=server.address):
            listed(catalog)
    finally:
        server.stop()


@pytest.mark.skipif(nacos is None, reason="needs nacos-sdk-python>=2,<3")
def test_nacos_catalog_logs_in() -> None:
    server = NacosServer(users={"nacos": "s3cret"}).start()
    try:
        client = nacos.NacosClient(server.address, username="nacos", password="s3cret")
        assert client.add_naming_instance("echo", "127.0.0.1", 20001, cluster_name="DEFAULT")
        catalog = open_catalog("nacos", {"address": server.address, "username": "nacos",
                                         "password": "s3cret", **FAST})
        assert listed(catalog)[0] == ["echo"]
        assert ("POST", "/nacos/v1/auth/login") in server.seen
        refused = open_catalog("nacos", {"address": server.address, "username": "nacos",
                                         "password": "wrong"})
        with pytest.raises(HttpError, match="login as 'nacos' refused"):
            listed(refused)
    finally:
        server.stop()


@pytest.mark.skipif(consul is None, reason="needs py-consul")
def test_consul_catalog_follows_the_official_client() -> None:
    server = ConsulServer().start()
    try:
        client = consul.Consul(host="127.0.0.1", port=server.port)
        client.agent.service.register("web", service_id="web-1", port=20001, tags=["v1"])
        client.agent.service.register("web", service_id="web-2", port=20002, tags=["v2"])
        client.agent.service.register("db", service_id="db-1", port=20003, tags=["primary"])

        index, answer = client.catalog.services()  # the official client reads the same endpoint
        assert answer == {"consul": [], "db": ["primary"], "web": ["v1", "v2"]} and int(index) > 0
        documented = golden("consul_catalog_services.json")  # a name -> its tags, "consul": []
        assert {str(shape(tags)) for tags in answer.values()} == {
            str(shape(tags)) for tags in documented.values()}

        catalog = open_catalog("consul", {"address": server.address, **FAST})
        assert listed(catalog) == (["db", "web"], [])
        assert listed(open_catalog("consul", {"address": server.address, "tag": ["v2"]}))[0] == [
            "web"]
        with pytest.raises(HttpError, match="No path to datacenter"):
            listed(open_catalog("consul", {"address": server.address, "dc": "dc9"}))

        client.agent.service.deregister("db-1")
        server.add_raw_catalog_entry("bad", {"tags": "x"})
        names, skipped = listed(catalog)
        assert names == ["web"] and [r for _, r in skipped] == ["its tags are not a list of strings"]

        server.stop()
        with pytest.raises(HttpError, match=server.address):
            listed(catalog)
    finally:
        server.stop()
