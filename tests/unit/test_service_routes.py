"""The service route locator (mesh/service_routes.py): what it generates, how it follows a
registry (the test Consul, py-consul registering), and how a runtime swaps its routes in.

The end-to-end run (``mesh run`` on the test Eureka, nginx upstreams, curl) is
tests/integration/test_service_routes.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import trio

from mesh.codec import HeaderKeys, Headers
from mesh.config import Config, parse
from mesh.registry import load_registry
from mesh.router import RouteTable
from mesh.runtime import ProxyRuntime
from mesh.service_routes import ServiceRouteLocator, expand, generate
from tests.peers.registries.consul_server import ConsulServer

try:
    import consul  # py-consul
except ImportError:
    consul = None
needs_client = pytest.mark.skipif(consul is None, reason="needs py-consul: pip install -e '.[test]'")

GUARD = 10.0  # the hang guard of every wait (a step takes ~0.05-0.3 s here)
SOURCE = {"wait": "1s", "retry": "20ms", "timeout": "2s"}


class Logs:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.events.append(("warning", event, fields))

    def error(self, event: str, **fields: Any) -> None:
        self.events.append(("error", event, fields))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for _, name, fields in self.events if name == event]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Logs:
    import mesh.service_routes

    recorder = Logs()
    monkeypatch.setattr(mesh.service_routes, "log", recorder)
    return recorder


def gateway(service_routes: dict[str, Any], **listener: Any) -> Config:
    return parse({
        "listeners": [{"name": "gw", "address": "127.0.0.1:8080", "protocol": "http1",
                       "service_routes": service_routes, **listener}],
        "clusters": [{"name": "own", "endpoints": ["127.0.0.1:9000"]}],
        "admin": None}, "gw.yaml")


def keys(path: str) -> HeaderKeys:
    return HeaderKeys(Headers(1, [(b":method", b"GET"), (b":authority", b"h"),
                                  (b":path", path.encode())]))


def test_generated_routes_and_clusters() -> None:
    config = gateway({"source": "eureka", "config": {"url": "127.0.0.1:8761", "refresh": "5s"},
                      "lower_case": True, "local_zone": "zone-a"},
                     routes=[{"name": "own", "match": {"path": "/own"}, "cluster": "own"}])
    skipped: list[tuple[Any, str]] = []
    expanded = expand(config, {"gw": ["ORDER-SERVICE", "BILLING"]},
                      lambda name: lambda entry, reason: skipped.append((entry, reason)))
    routes = expanded.listeners[0].routes
    assert [r.name for r in routes] == ["own", "ORDER-SERVICE", "ORDER-SERVICE:exact", "BILLING",
                                        "BILLING:exact"]
    clusters = {c.name: c for c in expanded.clusters}
    order = clusters["gw/ORDER-SERVICE"]
    assert order.discovery is not None and order.discovery.source == "eureka"
    assert dict(order.discovery.config) == {"url": "127.0.0.1:8761", "refresh": "5s",
                                            "app": "ORDER-SERVICE"}
    assert order.local_zone == "zone-a" and "own" in clusters
    assert expanded.source == "gw.yaml + service routes" and skipped == []

    # Spring's Path=/order-service/** with StripPrefix=1: the path, and the path below it
    table = RouteTable(routes)

    def to(path: str) -> tuple[str, str] | None:
        route = table.match(keys(path))
        return None if route is None else (route.clusters[0], route.path_prefix)

    assert to("/order-service/v1/orders") == ("gw/ORDER-SERVICE", "/order-service/")
    assert to("/order-service/") == ("gw/ORDER-SERVICE", "/order-service/")
    assert to("/order-service") == ("gw/ORDER-SERVICE", "/order-service")
    assert to("/order-service?x=1") == ("gw/ORDER-SERVICE", "/order-service")
    assert to("/order-services") is None and to("/ORDER-SERVICE/x") is None
    assert to("/billing/x") == ("gw/BILLING", "/billing/")
    assert to("/own") == ("own", "")

    # the same services give equal clusters (the runtime keeps them whole)
    again = expand(config, {"gw": ["BILLING", "ORDER-SERVICE"]}, lambda name: skipped.append)
    assert {c.name: c for c in again.clusters} == clusters
    assert expand(config, {}, lambda name: skipped.append) is config


def test_services_that_cannot_have_a_route_are_skipped() -> None:
    config = gateway({"source": "consul", "lower_case": True},
                     routes=[{"name": "own", "match": {"path": "/own"}, "cluster": "own"}])
    skipped: list[tuple[Any, str]] = []
    taken = {"own", "gw/taken"}
    routes, clusters = generate(config.listeners[0],
                                ["web", "WEB", "a/b", "..", "sp ace", "own", "taken", "ok.v2"],
                                taken, lambda entry, reason: skipped.append((entry, reason)))
    assert [c["name"] for c in clusters] == ["gw/web", "gw/ok.v2"]
    assert {"gw/web", "gw/ok.v2"} <= taken
    assert [entry for entry, _ in skipped] == ["WEB", "a/b", "..", "sp ace", "own", "taken"]
    assert skipped[0][1] == "its path /web/ is already the route of service 'web'"
    assert "cannot be a path segment" in skipped[1][1]
    assert skipped[4][1] == "listener 'gw' already has a route named 'own'"
    assert skipped[5][1] == "the config already has a cluster named 'gw/taken'"
    assert len(routes) == 4


class Applied:
    """A fake ProxyRuntime.apply: keeps every config it is given."""

    def __init__(self) -> None:
        self.configs: list[Config] = []
        self.refuse: str | None = None

    def __call__(self, config: Config) -> None:
        if self.refuse:
            raise ValueError(self.refuse)
        self.configs.append(config)

    def services(self) -> list[str]:
        if not self.configs:
            return []
        return [r.name for r in self.configs[-1].listeners[0].routes if ":" not in r.name
                and r.name != "own"]


async def until(condition: Callable[[], bool], what: str) -> None:
    with trio.move_on_after(GUARD):
        while not condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"never happened: {what}")


@needs_client
def test_locator_follows_the_registry(logs: Logs) -> None:
    """py-consul registers services; routes come and go with them; an unchanged list swaps
    nothing; the agent down keeps the routes (logged once); a malformed entry is skipped
    (logged once); a refused swap keeps the running config."""
    server = ConsulServer().start()
    client = consul.Consul(host="127.0.0.1", port=server.port)
    config = gateway({"source": "consul", "config": {"address": server.address, **SOURCE},
                      "refresh": "50ms"})
    applied = Applied()
    locator = ServiceRouteLocator(config, applied, {"consul": load_registry().discovery[
        "consul"].obj})

    def register(name: str, port: int) -> None:
        client.agent.service.register(name, service_id=f"{name}-1", port=port)

    def catalog_reads() -> int:
        return server.seen.count(("GET", "/v1/catalog/services"))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(locator.run)
            await until(lambda: catalog_reads() > 0, "a first read")
            assert applied.configs == []  # nothing registered: nothing to swap
            await trio.to_thread.run_sync(register, "web", 20001)
            await trio.to_thread.run_sync(register, "db", 20002)
            await until(lambda: applied.services() == ["db", "web"], "db and web")
            first = {c.name: c for c in applied.configs[-1].clusters}

            swaps, reads = len(applied.configs), catalog_reads()
            await until(lambda: catalog_reads() >= reads + 3, "three more reads")
            assert len(applied.configs) == swaps  # the same list: no swap

            await trio.to_thread.run_sync(register, "cache", 20003)
            await until(lambda: applied.services() == ["cache", "db", "web"], "cache")
            later = {c.name: c for c in applied.configs[-1].clusters}
            assert later["gw/db"] == first["gw/db"] and later["gw/web"] == first["gw/web"]

            await trio.to_thread.run_sync(client.agent.service.deregister, "db-1")
            await until(lambda: applied.services() == ["cache", "web"], "db gone")

            server.add_raw_catalog_entry("bad", "not a list")
            reads = catalog_reads()
            await until(lambda: catalog_reads() >= reads + 3, "three more reads")
            assert applied.services() == ["cache", "web"]

            swaps = len(applied.configs)
            await trio.to_thread.run_sync(server.stop)
            await until(lambda: bool(logs.named("service_catalog_failed")), "the outage")
            await trio.sleep(0.3)  # several retries
            await trio.to_thread.run_sync(server.start)
            await until(lambda: bool(logs.named("service_catalog_recovered")), "the recovery")
            assert len(applied.configs) == swaps  # kept through the outage, unchanged after

            applied.refuse = "a listener cannot bind"
            await trio.to_thread.run_sync(register, "queue", 20004)
            await until(lambda: len(logs.named("service_routes_failed")) == 1, "the refusal")
            reads = catalog_reads()
            await until(lambda: catalog_reads() >= reads + 3, "three more reads")
            applied.refuse = None
            await until(lambda: applied.services() == ["cache", "queue", "web"], "queue")
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
    failed = logs.named("service_catalog_failed")
    assert len(failed) == 1 and failed[0]["kept_services"] == 2
    assert failed[0]["listener"] == "gw" and failed[0]["registry"] == f"consul {server.address}"
    bad = logs.named("bad_registry_entry")
    assert len(bad) == 1 and bad[0]["error"] == "its tags are not a list of strings"
    assert len(logs.named("service_routes_failed")) == 1  # the same refusal: logged once


@needs_client
@pytest.mark.parametrize("protect", [True, False])
def test_empty_protection(logs: Logs, protect: bool) -> None:
    server = ConsulServer().start()
    client = consul.Consul(host="127.0.0.1", port=server.port)
    client.agent.service.register("web", service_id="web-1", port=20001)
    applied = Applied()
    locator = ServiceRouteLocator(gateway({"source": "consul", "refresh": "20ms", "config": {
        "address": server.address, "empty_protection": protect, **SOURCE}}), applied)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(locator.run)
            await until(lambda: applied.services() == ["web"], "web")
            await trio.to_thread.run_sync(client.agent.service.deregister, "web-1")
            if protect:
                await until(lambda: bool(logs.named("service_catalog_empty")), "kept")
                reads = server.seen.count(("GET", "/v1/catalog/services"))
                await until(lambda: server.seen.count(("GET", "/v1/catalog/services")) > reads + 2,
                            "more reads")
            else:
                await until(lambda: applied.services() == [], "emptied")
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
    assert applied.services() == (["web"] if protect else [])
    assert len(logs.named("service_catalog_empty")) == (1 if protect else 0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@needs_client
def test_the_runtime_swaps_service_routes_in(logs: Logs) -> None:
    """ProxyRuntime starts the locator; an unchanged service keeps its cluster object (pools,
    health) across swaps; a SIGHUP-style reload keeps the routes listed so far, and a changed
    service_routes setting lists the services again."""
    server = ConsulServer().start()
    client = consul.Consul(host="127.0.0.1", port=server.port)
    client.agent.service.register("web", service_id="web-1", address="127.0.0.1", port=20001)
    port = free_port()

    def file(refresh: str, lower_case: bool = False) -> Config:
        return parse({
            "listeners": [{"name": "gw", "address": f"127.0.0.1:{port}", "protocol": "http1",
                           "service_routes": {"source": "consul", "refresh": refresh,
                                              "lower_case": lower_case,
                                              "config": {"address": server.address, **SOURCE}}}],
            "admin": None, "logging": {"access_log": False}}, "gw.yaml")

    def routes(runtime: ProxyRuntime) -> list[str]:
        return [route.name for route in runtime.config.listeners[0].routes]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            runtime: ProxyRuntime = await nursery.start(
                ProxyRuntime(file("30ms"), load_registry()).run)
            await until(lambda: routes(runtime) == ["web", "web:exact"], "web's routes")
            web = runtime.clusters["gw/web"]
            await until(lambda: bool(web.endpoints), "web's endpoints")
            await trio.to_thread.run_sync(lambda: client.agent.service.register(
                "api", service_id="api-1", address="127.0.0.1", port=20002))
            await until(lambda: "api" in routes(runtime), "api's routes")
            assert runtime.clusters["gw/web"] is web  # kept whole

            assert runtime.locator is not None
            runtime.locator.reload(file("30ms"))  # the same file again
            assert routes(runtime) == ["api", "api:exact", "web", "web:exact"]
            assert runtime.clusters["gw/web"] is web
            reads = server.seen.count(("GET", "/v1/catalog/services"))
            runtime.locator.reload(file("40ms", lower_case=True))  # changed: listed again
            assert routes(runtime) == ["api", "api:exact", "web", "web:exact"]  # meanwhile
            assert runtime.clusters["gw/web"] is web  # the same cluster settings: kept
            await until(lambda: server.seen.count(("GET", "/v1/catalog/services")) > reads + 2,
                        "the list read again")
            assert runtime.clusters["gw/web"] is web

            other = parse({"listeners": [{"name": "gw", "address": f"127.0.0.1:{port}",
                                          "protocol": "http1", "service_routes": {
                                              "source": "consul", "config": {
                                                  "address": "127.0.0.1:1", **SOURCE}}}],
                           "admin": None}, "gw.yaml")
            runtime.locator.reload(other)  # another registry: its own list, none yet
            assert routes(runtime) == [] and "gw/web" not in runtime.clusters
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
