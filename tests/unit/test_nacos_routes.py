"""Route rules from Nacos config (mesh/nacos_routes.py): the ``nacos_routes`` setting, the
config client and its long-poll against the test Nacos (tests/peers/registries/nacos_server.py,
nacos-sdk-python's ``NacosClient`` publishing), the locator, and how a runtime swaps its
routes in, SIGHUP-style reloads and ``service_routes`` included.

The end-to-end run (``mesh run``, nginx upstreams, curl) is
tests/integration/test_nacos_routes.py.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
import trio

from mesh.config import Config, ConfigError, parse
from mesh.config._dump import dump
from mesh.config._model import NacosRoutes
from mesh.nacos_routes import NacosConfigClient, NacosRouteLocator, md5
from mesh.registry import load_registry
from mesh.runtime import ProxyRuntime
from tests.peers.registries.nacos_server import NacosServer

try:
    import nacos  # nacos-sdk-python 2.x: the v1 (HTTP open API) NacosClient
except ImportError:
    nacos = None
needs_client = pytest.mark.skipif(
    nacos is None, reason="needs nacos-sdk-python>=2,<3 (its v1 NacosClient): pip install -e '.[test]'")

pytestmark = pytest.mark.filterwarnings("ignore:ssl.*:DeprecationWarning")

GUARD = 10.0
DATA_ID = "gateway-routes.yaml"
ROUTES_A = "- {name: a, match: {path: {prefix: /}}, cluster: a}\n"
ROUTES_B = "- {name: b, match: {path: {prefix: /}}, cluster: b}\n"


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
    import mesh.nacos_routes

    recorder = Logs()
    monkeypatch.setattr(mesh.nacos_routes, "log", recorder)
    return recorder


def gateway(address: str, port: int = 8080, **nacos_routes: Any) -> Config:
    return parse({
        "listeners": [{"name": "gw", "address": f"127.0.0.1:{port}", "protocol": "http1",
                       "routes": [{"name": "own", "match": {"path": {"prefix": "/own/"}},
                                   "cluster": "a"}],
                       "nacos_routes": {"address": address, "data_id": DATA_ID,
                                        **nacos_routes}}],
        "clusters": [{"name": "a", "endpoints": ["127.0.0.1:9001"]},
                     {"name": "b", "endpoints": ["127.0.0.1:9002"]}],
        "admin": None, "logging": {"access_log": False}}, "gw.yaml")


class Applied:
    def __init__(self) -> None:
        self.configs: list[Config] = []

    def __call__(self, config: Config) -> None:
        self.configs.append(config)

    def routes(self) -> list[str]:
        return [r.name for r in self.configs[-1].listeners[0].routes] if self.configs else []


async def until(condition: Callable[[], bool], what: str) -> None:
    with trio.move_on_after(GUARD):
        while not condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"never happened: {what}")


def client_of(server: NacosServer, namespace: str = "") -> Any:
    """NacosClient, its failover and snapshot files in a temporary directory."""
    client = nacos.NacosClient(server.address, namespace=namespace)
    files = tempfile.mkdtemp(prefix="rpcmesh-nacos-")
    client.set_options(no_snapshot=True, failover_base=files, snapshot_base=files)
    return client


def publish(server: NacosServer, content: str, namespace: str = "") -> None:
    assert client_of(server, namespace).publish_config(DATA_ID, "DEFAULT_GROUP", content)


def remove(server: NacosServer) -> None:
    assert client_of(server).remove_config(DATA_ID, "DEFAULT_GROUP")


# -- settings -------------------------------------------------------------------------------


def test_the_setting() -> None:
    config = gateway("127.0.0.1:8848", namespace="dev", username="u", password="p")
    assert config.listeners[0].nacos_routes == NacosRoutes(
        "127.0.0.1:8848", DATA_ID, "DEFAULT_GROUP", "dev", "u", "p")
    dumped = dump(config)["listeners"][0]["nacos_routes"]
    assert dumped["password"] == "<redacted>" and dumped["username"] == "u"
    assert dump(config, secrets=True)["listeners"][0]["nacos_routes"]["password"] == "p"

    def refused(listener: dict[str, Any], match: str, **top: Any) -> None:
        with pytest.raises(ConfigError, match=match):
            parse({"listeners": [{"name": "gw", "address": "127.0.0.1:8080",
                                  "protocol": "http1", **listener}],
                   "clusters": [{"name": "a", "endpoints": ["127.0.0.1:9001"]}], **top}, "f")

    nr = {"address": "127.0.0.1:8848", "data_id": DATA_ID}
    refused({"nacos_routes": {"address": "x"}}, "data_id")
    refused({"nacos_routes": {**nr, "dataId": "x"}}, "dataId")
    refused({"nacos_routes": {**nr, "username": "u"}}, "username and password go together")
    refused({"nacos_routes": nr, "cluster": "a"}, "cluster shorthand")
    refused({"nacos_routes": nr, "service_routes": {"source": "nacos", "config": {
        "address": "127.0.0.1:8848"}}}, "both service_routes and nacos_routes.*remove one")
    refused({"nacos_routes": nr}, "nacos_routes and the xds section.*remove the xds section",
            xds={"address": "127.0.0.1:18000"})
    # the file's own routes are optional
    assert parse({"listeners": [{"name": "gw", "address": "127.0.0.1:8080", "nacos_routes": nr}],
                  "clusters": [{"name": "a", "endpoints": ["127.0.0.1:9001"]}]},
                 "f").listeners[0].routes == ()


def test_a_bad_address_is_refused_when_the_locator_is_made() -> None:
    with pytest.raises(ValueError, match="listener 'gw': nacos_routes: nacos_routes address"):
        NacosRouteLocator(gateway("ftp://x"), Applied())


def test_contents_are_parsed_against_the_config() -> None:
    applied = Applied()
    locator = NacosRouteLocator(gateway("127.0.0.1:8848"), applied)
    watch = locator.watches["gw"]
    locator.update(watch, ROUTES_A + "- {match: {path: {prefix: /b/}}, cluster: b}\n")
    assert applied.routes() == ["own", "a", "gw/nacos/1"]
    assert applied.configs[-1].source == "gw.yaml + nacos routes"
    # refused: the message of the parser, the item as the source; the routes stay
    for bad, message in [("- {cluster: c}", "nacos DEFAULT_GROUP/gateway-routes.yaml: "
                                            "[0].cluster: no cluster named 'c'"),
                         ("- [", "nacos DEFAULT_GROUP/gateway-routes.yaml: line"),
                         ("{a: 1}", "expected a list of routes"),
                         ("- {name: own, cluster: a}", "already has a route named 'own'")]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            locator.expand(locator.file, {"gw": _with(watch, bad)})
    locator.update(watch, "[]")  # JSON, no routes
    assert applied.routes() == ["own"]


def _with(watch: Any, content: str) -> Any:
    import copy

    other = copy.copy(watch)
    other.content = content
    return other


# -- the client and the test server ------------------------------------------------------------


@needs_client
def test_client_reads_and_long_polls() -> None:
    server = NacosServer(config_hold=0.3).start()
    settings = NacosRoutes(server.address, DATA_ID)
    client = NacosConfigClient(settings)

    async def main() -> None:
        assert await client.get() is None
        start = trio.current_time()
        assert await client.changed("") is False  # none yet: held, then empty
        assert 0.25 < trio.current_time() - start < 2
        await trio.to_thread.run_sync(publish, server, ROUTES_A)
        assert await client.get() == ROUTES_A
        assert await client.changed("") is True  # at once: the MD5 differs
        assert await client.changed(md5(ROUTES_A)) is False

        async def later() -> None:
            await trio.sleep(0.1)
            await trio.to_thread.run_sync(publish, server, ROUTES_B)

        server.config_hold = 5.0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(later)
            start = trio.current_time()
            assert await client.changed(md5(ROUTES_A)) is True  # woken by the change
            assert trio.current_time() - start < 2
        # NacosClient's own view of the item
        assert client_of(server).get_config(DATA_ID, "DEFAULT_GROUP") == ROUTES_B
        await trio.to_thread.run_sync(remove, server)
        assert await client.get() is None

    try:
        trio.run(main)
    finally:
        server.stop()


@needs_client
def test_namespace_and_auth() -> None:
    server = NacosServer(config_hold=0.2, users={"nacos": "secret"}).start()
    try:
        with server.cond:
            server.configs[("dev", "G", DATA_ID)] = ROUTES_A
        ok = NacosConfigClient(NacosRoutes(server.address, DATA_ID, "G", "dev", "nacos", "secret"))
        bad = NacosConfigClient(NacosRoutes(server.address, DATA_ID, "G", "dev", "nacos", "no"))

        async def main() -> None:
            assert await ok.get() == ROUTES_A
            assert await ok.changed(md5(ROUTES_A)) is False
            assert await ok.changed("0" * 32) is True
            with pytest.raises(Exception, match="login as 'nacos' refused"):
                await bad.get()

        trio.run(main)
    finally:
        server.stop()


# -- the locator ------------------------------------------------------------------------------


@needs_client
def test_locator_follows_the_item(logs: Logs) -> None:
    """Published routes are swapped in; a broken content is refused once and the routes stay;
    an outage keeps them (logged once); a deleted item removes them."""
    server = NacosServer(config_hold=0.3).start()
    applied = Applied()
    locator = NacosRouteLocator(gateway(server.address), applied, retry=0.05)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(locator.run)
            await trio.sleep(0.1)
            assert applied.configs == []  # no item: nothing to swap
            await trio.to_thread.run_sync(publish, server, ROUTES_A)
            await until(lambda: applied.routes() == ["own", "a"], "a's route")
            await trio.to_thread.run_sync(publish, server, ROUTES_B)
            await until(lambda: applied.routes() == ["own", "b"], "b's route")
            swaps = len(applied.configs)
            await trio.to_thread.run_sync(publish, server, "- {cluster: nowhere}\n")
            await until(lambda: bool(logs.named("nacos_routes_refused")), "the refusal")
            await trio.sleep(0.5)  # a long-poll round or two
            assert len(applied.configs) == swaps
            [refused] = logs.named("nacos_routes_refused")
            assert "no cluster named 'nowhere'" in refused["error"]
            assert "nacos DEFAULT_GROUP/gateway-routes.yaml" in refused["error"]

            await trio.to_thread.run_sync(server.stop)
            await until(lambda: bool(logs.named("nacos_config_failed")), "the outage logged")
            await trio.sleep(0.4)
            assert len(logs.named("nacos_config_failed")) == 1
            assert len(applied.configs) == swaps
            await trio.to_thread.run_sync(server.start)
            await until(lambda: bool(logs.named("nacos_config_recovered")), "back")
            await trio.to_thread.run_sync(publish, server, ROUTES_A)
            await until(lambda: applied.routes() == ["own", "a"], "a's route again")
            await trio.to_thread.run_sync(remove, server)
            await until(lambda: applied.routes() == ["own"], "the routes removed")
            assert logs.named("nacos_routes_removed")
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@needs_client
def test_the_runtime_swaps_nacos_routes_in(logs: Logs) -> None:
    """ProxyRuntime runs the locator as a dynamic part after service_routes: a SIGHUP-style
    reload (through runtime.locator) keeps the Nacos routes; a file whose clusters no longer
    fit them is refused; another item is read again."""
    server = NacosServer(config_hold=0.3).start()
    with server.cond:
        server.configs[("", "DEFAULT_GROUP", DATA_ID)] = ROUTES_A
    port = free_port()

    def routes(runtime: ProxyRuntime) -> list[str]:
        return [route.name for route in runtime.config.listeners[0].routes]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            runtime: ProxyRuntime = await nursery.start(
                ProxyRuntime(gateway(server.address, port), load_registry()).run)
            await until(lambda: routes(runtime) == ["own", "a"], "a's route")
            assert runtime.locator is not None
            runtime.locator.reload(gateway(server.address, port))  # the same file again
            assert routes(runtime) == ["own", "a"]
            no_a = parse({"listeners": [{"name": "gw", "address": f"127.0.0.1:{port}",
                                         "nacos_routes": {"address": server.address,
                                                          "data_id": DATA_ID}}],
                          "clusters": [{"name": "b", "endpoints": ["127.0.0.1:9002"]}],
                          "admin": None}, "gw.yaml")
            with pytest.raises(ConfigError, match="no cluster named 'a'"):
                runtime.locator.reload(no_a)
            assert routes(runtime) == ["own", "a"]
            with server.cond:
                server.configs[("", "OTHER", DATA_ID)] = ROUTES_B
            runtime.locator.reload(gateway(server.address, port, group="OTHER"))
            assert routes(runtime) == ["own"]  # another item: read again
            await until(lambda: routes(runtime) == ["own", "b"], "b's route")
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
