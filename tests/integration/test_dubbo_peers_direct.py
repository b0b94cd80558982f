"""Self-test of the Dubbo peer harness: each consumer calls the provider DIRECTLY.

Both ends are third-party code (sofa-rpc-node/dubbo-remoting, dubbo-ssl-python); no rpcmesh
in between. Every scenario the Dubbo proxy tests will run through rpcmesh passes here first,
so a failure there is the proxy's. Later tests point the same consumers at rpcmesh's port.

Run: ``python -m pytest -q tests/integration/test_dubbo_peers_direct.py`` (needs node, the
npm packages of tests/peers/dubbo_node and PyPI dubbo-ssl-python).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.dubbo_peers import (
    BIZ_EXCEPTION,
    INTERFACE,
    PY_MAX_STRING,
    Call,
    DubboConsumer,
    DubboConsumerFactory,
    DubboProvider,
    DubboProviderFactory,
    big_text,
    java_long,
    mib_argument,
    user,
)

pytestmark = pytest.mark.integration

KINDS = ["node", "python"]


@pytest.fixture(scope="module")
def provider(dubbo_provider_module: DubboProviderFactory) -> DubboProvider:
    return dubbo_provider_module(version="1.0.0")


@pytest.fixture(scope="module")
def consumers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DubboConsumerFactory]:
    factory = DubboConsumerFactory(tmp_path_factory.mktemp("dubbo-consumers"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def _clients(consumers: DubboConsumerFactory, provider: DubboProvider) -> dict[str, DubboConsumer]:
    return {}


@pytest.fixture(params=KINDS)
def client(request: pytest.FixtureRequest, consumers: DubboConsumerFactory, provider: DubboProvider,
           _clients: dict[str, DubboConsumer]) -> DubboConsumer:
    """One consumer of each kind for the whole module (one connection each)."""
    kind: str = request.param
    if kind not in _clients:
        _clients[kind] = consumers(kind, provider)
    return _clients[kind]


def test_strings(client: DubboConsumer) -> None:
    for text in ["hello", "", "h\u00e9llo \u4e2d\u6587 \u20ac", "x" * 1000, "y" * PY_MAX_STRING]:
        assert client.call("echo", text).unwrap() == text


def test_ints_booleans_doubles(client: DubboConsumer) -> None:
    assert client.call("add", 2, 3).unwrap() == 5
    assert client.call("add", 1, -1).unwrap() == 0  # a bare 0 would be malformed (PEERS.md)
    assert client.call("add", 2**31 - 2, 1).unwrap() == 2**31 - 1
    assert client.call("echoBool", False).unwrap() is False
    assert client.call("echoDouble", 2.5).unwrap() == 2.5


def test_long_above_2_pow_53(client: DubboConsumer) -> None:
    for value in (2**53 + 1, -(2**63), 2**63 - 1):
        got = client.call("echoLong", java_long(value)).unwrap()
        # node hands longs beyond 2^53 over as decimal strings, python as int
        assert int(got) == value, got


def test_pojo(client: DubboConsumer) -> None:
    if client.kind == "node":
        arg = user("ann", 31, ["a", "b"], {"team": "mesh", "level": 3})
        expect: dict[str, Any] = {"name": "ann", "age": 31, "tags": ["a", "b"],
                                  "attrs": {"team": "mesh", "level": 3}}
    else:  # dubbo-ssl-python cannot encode maps, so no attrs
        arg = user("ann", 31, ["a", "b"])
        expect = {"name": "ann", "age": 31, "tags": ["a", "b"]}
    assert client.call("echoUser", arg).unwrap() == expect


def test_list(client: DubboConsumer) -> None:
    # dubbo-ssl-python writes typed lists of one element type only
    value = [1, "two", 3.5, True] if client.kind == "node" else ["one", "two", "three"]
    assert client.call("echoList", value).unwrap() == value


def test_map(client: DubboConsumer) -> None:
    value = {"a": 1, "b": "x", "nested": {"c": [1, 2]}}
    result = client.call("echoMap", value)
    if client.kind == "python":  # no map encoder: refused before the wire
        assert result.kind == "client" and "maps" in result.message
    else:
        assert result.unwrap() == value


def test_1mib_argument(client: DubboConsumer) -> None:
    assert client.call("sizeOf", mib_argument(client.kind), timeout_ms=15000).unwrap() == 1 << 20


def test_big_result(client: DubboConsumer) -> None:
    # dubbo-ssl-python cannot read strings of 32768+ characters (signed 16-bit length)
    size = 300_000 if client.kind == "node" else PY_MAX_STRING
    assert client.call("bigResult", size, timeout_ms=10000).unwrap() == big_text(size)


def test_business_exception(client: DubboConsumer) -> None:
    result = client.call("fail", "biz boom")
    assert not result.ok and result.kind == "exception", result
    assert result.status == 20
    assert result.error is not None and result.error["java_class"] == BIZ_EXCEPTION
    assert result.message == "biz boom"
    assert client.call("echo", "still here").unwrap() == "still here"


def test_server_error_status_80(client: DubboConsumer) -> None:
    result = client.call("crash", "server boom")
    assert not result.ok and result.kind == "server_error", result
    assert result.status == 80 and "server boom" in result.message
    assert client.call("echo", "still here").unwrap() == "still here"


def test_client_timeout_keeps_the_connection(client: DubboConsumer) -> None:
    before = client.stats()
    started = time.monotonic()
    result = client.call("sleep", 700, timeout_ms=200)
    assert result.kind == "timeout", result
    assert time.monotonic() - started < 0.7 + 0.5
    assert client.call("echo", "during").unwrap() == "during"
    time.sleep(0.7)  # the late response arrives and is dropped
    assert client.call("echo", "after").unwrap() == "after"
    after = client.stats()
    assert after["connected"] and after["local_port"] == before["local_port"] == client.local_port


def test_20_concurrent_calls_on_one_connection(client: DubboConsumer) -> None:
    client.call("peak").unwrap()  # reset the provider's in-flight peak
    calls = [Call("sleep", [300 + i]) for i in range(20)]
    calls += [Call("echo", [f"call-{i}-" + "z" * i]) for i in range(20)]
    results = client.call_many(calls)
    assert [r.unwrap() for r in results[:20]] == [300 + i for i in range(20)]
    assert [r.unwrap() for r in results[20:]] == [f"call-{i}-" + "z" * i for i in range(20)]
    assert client.call("peak").unwrap() == 20  # all 20 sleeps were at the provider at once
    stats = client.stats()
    assert stats["connections"] == 1 and stats["local_port"] == client.local_port


def test_attachments(client: DubboConsumer) -> None:
    sent = {"x-trace-id": "abc123", "x-tenant": "t1"}
    seen = client.call("attachments", attachments=sent).unwrap()
    assert {k: seen.get(k) for k in sent} == sent
    assert seen["path"] == INTERFACE and seen["version"] == "1.0.0"
    assert client.call("attachment", "x-tenant", attachments=sent).unwrap() == "t1"
    assert client.call("attachment", "x-tenant").unwrap() == "<absent>"


@pytest.mark.parametrize("kind", KINDS)
def test_heartbeat(kind: str, dubbo_consumer: DubboConsumerFactory, provider: DubboProvider) -> None:
    consumer = dubbo_consumer(kind, provider, heartbeat_ms=300)
    assert consumer.call("echo", "hi").unwrap() == "hi"
    stats = consumer.wait_heartbeat_acks(1, timeout=6)
    assert stats["heartbeats_sent"] >= 1 and stats["heartbeat_acks"] >= 1, stats
    assert stats["local_port"] == consumer.local_port  # answered on the same connection
    assert consumer.call("echo", "after heartbeats").unwrap() == "after heartbeats"


@pytest.mark.parametrize("kind", KINDS)
def test_versions_and_groups_pick_the_provider(kind: str, dubbo_provider: DubboProviderFactory,
                                               dubbo_consumer: DubboConsumerFactory) -> None:
    canary = dubbo_provider(version="2.0.0", group="canary")
    consumer = dubbo_consumer(kind, canary, version="2.0.0", group="canary")
    who = consumer.call("whoami").unwrap()
    assert who["version"] == "2.0.0" and who["group"] == "canary" and who["port"] == canary.port
    stranger = dubbo_consumer(kind, canary, version="1.0.0")
    result = stranger.call("whoami")
    assert result.kind == "server_error" and result.status == 80
    assert "not found service" in result.message
