"""Dubbo providers discovered in a real ZooKeeper, end to end (issue 7, first Must-show).

A real ZooKeeper 3.8 (Debian ``zookeeper``, zookeeper_server.py) on 127.0.0.1; real Dubbo 2
providers (tests/peers/dubbo_node/provider.js, sofa-rpc-node + dubbo-remoting) that register
themselves with sofa-rpc-node's ZooKeeper registry under /dubbo/<interface>/providers; real
consumers (node sofa-rpc-node, PyPI dubbo-ssl-python) calling through rpcmesh (``mesh run``)
whose cluster lists no endpoint, only ``discovery: {source: zookeeper, ...}``.

Shown: a call reaches the registered provider; a second provider takes traffic within 1 s of
registering; a provider stopped with SIGTERM (it deregisters) or SIGKILL (its session times
out) stops getting traffic while calls keep succeeding on the other; ZooKeeper stopped and
restarted: rpcmesh keeps its endpoints and serves calls throughout, and providers added after
the restart take traffic.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.integration.dubbo_peers import (
    INTERFACE,
    DubboConsumer,
    DubboConsumerFactory,
    DubboProvider,
    DubboProviderFactory,
)
from tests.integration.mesh_harness import (
    LIVE_LOGS,
    LOOPBACK,
    admin_status,
    free_port,
    http_get,
    port_accepts,
    stop_process,
    tail,
)
from tests.integration.zookeeper_server import ZooKeeperServer, zookeeper_server  # noqa: F401

pytestmark = pytest.mark.integration

PROVIDERS = f"/dubbo/{INTERFACE}/providers"
#: the providers' ZooKeeper session (ms): a SIGKILLed provider's node lasts this long
PROVIDER_SESSION_MS = 2000


class MeshRun:
    """``mesh run`` on a config whose only cluster is discovered in ZooKeeper."""

    def __init__(self, workdir: Path, zk: ZooKeeperServer, session_timeout: str = "10s") -> None:
        import subprocess
        import sys

        self.port, self.admin = free_port(), free_port()
        self.config = workdir / "mesh.yaml"
        self.config.write_text(f"""\
listeners:
  - name: dubbo
    address: {LOOPBACK}:{self.port}
    protocol: dubbo
    routes:
      - match: {{service: {{prefix: ""}}}}
        cluster: echo
clusters:
  - name: echo
    protocol: dubbo
    connect_timeout: 500ms
    passive_health: {{consecutive_failures: 1, ejection_time: 30s}}
    discovery:
      source: zookeeper
      config: {{address: "{zk.address}", interface: {INTERFACE}, version: "1.0.0",
               session_timeout: {session_timeout}}}
admin: {{address: {LOOPBACK}:{self.admin}}}
""")
        self.log = workdir / "mesh.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(self.config)],
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=workdir)
        LIVE_LOGS["mesh run (zookeeper discovery)"] = self.log
        deadline = time.monotonic() + 15
        while not (port_accepts(self.port) and admin_status(self.admin) == 200):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"mesh run did not start:\n{tail(self.log)}", pytrace=False)
            time.sleep(0.05)

    def cluster(self) -> dict[str, Any]:
        status, _, body = http_get(self.admin, "/clusters", timeout=5.0)
        assert status == 200, body
        clusters = {c["name"]: c for c in json.loads(body)}
        return clusters["echo"]

    def endpoints(self) -> set[int]:
        """The ports of the cluster's endpoints, as /clusters lists them."""
        return {int(e["address"].rsplit(":", 1)[1]) for e in self.cluster()["endpoints"]}

    def wait_endpoints(self, ports: set[int], timeout: float = 10.0) -> float:
        """Wait until /clusters lists exactly ``ports``; the seconds it took."""
        start = time.monotonic()
        while True:
            seen = self.endpoints()
            if seen == ports:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                pytest.fail(f"/clusters lists {sorted(seen)} after {timeout:.0f} s, not "
                            f"{sorted(ports)}: {self.cluster()}\n{tail(self.log)}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)
        LIVE_LOGS.pop("mesh run (zookeeper discovery)", None)


@pytest.fixture
def world(zookeeper_server: ZooKeeperServer, dubbo_provider: DubboProviderFactory,  # noqa: F811
          tmp_path: Path) -> Iterator[dict[str, Any]]:
    """ZooKeeper, one registered provider, rpcmesh discovering it."""
    first = dubbo_provider(zk=zookeeper_server.address, zk_session_ms=PROVIDER_SESSION_MS)
    mesh = MeshRun(tmp_path, zookeeper_server)
    try:
        mesh.wait_endpoints({first.port})
        yield {"zk": zookeeper_server, "mesh": mesh, "first": first,
               "provider": lambda: dubbo_provider(zk=zookeeper_server.address,
                                                  zk_session_ms=PROVIDER_SESSION_MS)}
    finally:
        mesh.stop()


def _whoami(consumer: DubboConsumer) -> int:
    return int(consumer.call("whoami", timeout_ms=2000).unwrap()["port"])


def _until_port(consumer: DubboConsumer, port: int, timeout: float) -> float:
    """Call whoami until ``port`` answers; the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while True:
        if _whoami(consumer) == port:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"provider {port} got no call within {timeout} s", pytrace=False)


def _spread(consumer: DubboConsumer, calls: int) -> Counter[int]:
    return Counter(_whoami(consumer) for _ in range(calls))


def _calls_while(consumer: DubboConsumer, done: Callable[[], bool], timeout: float
                 ) -> tuple[Counter[Any], list[str]]:
    """Call whoami until ``done()``: (answering ports, or "failed"), failure messages."""
    seen: Counter[Any] = Counter()
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done after {timeout} s: {seen} {errors}"
        result = consumer.call("whoami", timeout_ms=2000)
        if result.ok:
            seen[int(result.value["port"])] += 1
        else:
            seen["failed"] += 1
            errors.append(f"{result.kind} {result.status} {result.message}")
    return seen, errors


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["node", "python"])
def test_call_reaches_the_registered_provider(kind: str, world: dict[str, Any],
                                              dubbo_consumer: DubboConsumerFactory) -> None:
    zk: ZooKeeperServer = world["zk"]
    first: DubboProvider = world["first"]
    mesh: MeshRun = world["mesh"]
    # what sofa-rpc-node registered: one URL-encoded dubbo:// URL, the one it printed
    children = zk.children(PROVIDERS)
    assert [unquote(c) for c in children] == [first.registered], children
    assert first.registered.startswith(f"dubbo://127.0.0.1:{first.port}?")
    consumer = dubbo_consumer(kind, mesh.port, version="1.0.0")
    assert consumer.call("echo", "via zookeeper").unwrap() == "via zookeeper"
    assert _whoami(consumer) == first.port
    cluster = mesh.cluster()
    assert cluster["discovery"] == "1 endpoints"
    [endpoint] = cluster["endpoints"]
    assert endpoint["address"] == first.address and endpoint["weight"] == 100
    assert endpoint["metadata"]["version"] == "1.0.0"


@pytest.mark.parametrize("kind", ["node", "python"])
def test_second_provider_takes_traffic_within_1s(kind: str, world: dict[str, Any],
                                                 dubbo_consumer: DubboConsumerFactory) -> None:
    mesh: MeshRun = world["mesh"]
    first: DubboProvider = world["first"]
    consumer = dubbo_consumer(kind, mesh.port, version="1.0.0")
    assert _whoami(consumer) == first.port
    second = world["provider"]()  # returns once it sees itself registered in ZooKeeper
    took = _until_port(consumer, second.port, timeout=5.0)
    assert took < 1.0, f"the second provider took {took:.2f} s to get a call"
    assert mesh.endpoints() == {first.port, second.port}
    spread = _spread(consumer, 20)
    assert spread[first.port] >= 5 and spread[second.port] >= 5, spread  # round robin


def test_provider_stopped_with_sigterm_stops_getting_traffic(
        world: dict[str, Any], dubbo_consumer: DubboConsumerFactory) -> None:
    mesh: MeshRun = world["mesh"]
    first: DubboProvider = world["first"]
    second = world["provider"]()
    mesh.wait_endpoints({first.port, second.port})
    consumer = dubbo_consumer("node", mesh.port, version="1.0.0")
    _until_port(consumer, second.port, timeout=5.0)
    second.stop()  # SIGTERM: sofa-rpc-node removes its node, then closes
    seen, errors = _calls_while(consumer, lambda: mesh.endpoints() == {first.port}, timeout=5.0)
    assert not errors, (seen, errors)  # it deregistered before closing: no call is lost
    assert _spread(consumer, 10) == Counter({first.port: 10})
    assert mesh.cluster()["discovery"] == "1 endpoints"


def test_provider_killed_stops_getting_traffic(world: dict[str, Any],
                                               dubbo_consumer: DubboConsumerFactory) -> None:
    mesh: MeshRun = world["mesh"]
    first: DubboProvider = world["first"]
    second = world["provider"]()
    mesh.wait_endpoints({first.port, second.port})
    consumer = dubbo_consumer("node", mesh.port, version="1.0.0")
    _until_port(consumer, second.port, timeout=5.0)
    killed_at = time.monotonic()
    second.kill()  # SIGKILL: its node stays until its ZooKeeper session times out
    seen, errors = _calls_while(consumer, lambda: mesh.endpoints() == {first.port},
                                timeout=PROVIDER_SESSION_MS / 1000 + 8)
    gone_after = time.monotonic() - killed_at
    # until the session expires the dead endpoint is still listed; passive health (one
    # failure ejects) keeps calls off it after at most one failed call
    assert seen["failed"] <= 1, (seen, errors)
    assert seen[first.port] >= 1 and second.port not in seen, seen
    assert gone_after < PROVIDER_SESSION_MS / 1000 + 5, gone_after
    assert _spread(consumer, 10) == Counter({first.port: 10})


def test_zookeeper_restart_loses_no_endpoint(world: dict[str, Any],
                                             dubbo_consumer: DubboConsumerFactory) -> None:
    zk: ZooKeeperServer = world["zk"]
    mesh: MeshRun = world["mesh"]
    first: DubboProvider = world["first"]
    consumers = [dubbo_consumer(kind, mesh.port, version="1.0.0") for kind in ("node", "python")]
    log_mark = mesh.log.stat().st_size
    zk.stop()
    assert not port_accepts(zk.port)
    # ZooKeeper is down: the cluster keeps its endpoint and every call still succeeds
    down_until = time.monotonic() + 3.0
    calls = 0
    while time.monotonic() < down_until:
        for consumer in consumers:
            assert _whoami(consumer) == first.port
            calls += 1
        assert mesh.endpoints() == {first.port}
        time.sleep(0.05)
    assert calls >= 10
    assert mesh.proc.poll() is None
    # /clusters says what is going on (the ZooKeeper client noticed within its session time)
    deadline = time.monotonic() + 10
    while "keeping the last known endpoints" not in (mesh.cluster()["discovery"] or ""):
        assert time.monotonic() < deadline, mesh.cluster()["discovery"]
        time.sleep(0.1)
    zk.start()
    # back: calls go on; the provider's session (or a new registration) is listed again
    deadline = time.monotonic() + 10
    while [unquote(c) for c in zk.children(PROVIDERS)] != [first.registered]:
        assert time.monotonic() < deadline, zk.children(PROVIDERS)
        for consumer in consumers:
            assert _whoami(consumer) == first.port
        time.sleep(0.1)
    assert mesh.endpoints() == {first.port}
    # rpcmesh's ZooKeeper client reconnects (kazoo retries with a backoff of up to 2 s) and
    # its watch is set again; the calls go on meanwhile
    deadline = time.monotonic() + 10
    while b'"state": "CONNECTED"' not in mesh.log.read_bytes()[log_mark:]:
        assert time.monotonic() < deadline, tail(mesh.log)
        for consumer in consumers:
            assert _whoami(consumer) == first.port
        time.sleep(0.1)
    # discovery goes on after the restart: a provider added now takes traffic within 1 s
    third = world["provider"]()
    for consumer in consumers:
        took = _until_port(consumer, third.port, timeout=10.0)
        assert took < 1.0, f"after the restart a new provider took {took:.2f} s"
    assert mesh.endpoints() == {first.port, third.port}
    assert mesh.cluster()["discovery"] == "2 endpoints"
    assert mesh.proc.poll() is None




def test_providers_node_deleted_and_created_again(world: dict[str, Any],
                                                  dubbo_consumer: DubboConsumerFactory) -> None:
    """Someone deletes /dubbo/<interface>/providers (a registry clean-up): no provider is
    listed, empty protection keeps the endpoint; a provider that registers afterwards (it
    creates the node again) takes traffic within 1 s. kazoo's ChildrenWatch stops for good on a
    deleted node: the source watches the node itself and starts a new one."""
    zk: ZooKeeperServer = world["zk"]
    mesh: MeshRun = world["mesh"]
    first: DubboProvider = world["first"]
    consumer = dubbo_consumer("node", mesh.port, version="1.0.0")
    assert _whoami(consumer) == first.port
    mark = mesh.log.stat().st_size
    zk.delete(PROVIDERS)
    _wait_log(mesh, mark, b"registry_empty")
    assert mesh.endpoints() == {first.port}
    assert _whoami(consumer) == first.port
    third = world["provider"]()
    took = _until_port(consumer, third.port, timeout=5.0)
    assert took < 1.0, f"after the node was deleted a new provider took {took:.2f} s"
    mesh.wait_endpoints({third.port}, timeout=2.0)  # the first one is no longer registered
    assert _spread(consumer, 5) == Counter({third.port: 5})


def _wait_log(mesh: MeshRun, mark: int, text: bytes, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in mesh.log.read_bytes()[mark:]:
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{tail(mesh.log)}"
        time.sleep(0.05)


def test_no_provider_yet_gets_a_local_error(zookeeper_server: ZooKeeperServer,  # noqa: F811
                                            dubbo_consumer: DubboConsumerFactory,
                                            tmp_path: Path) -> None:
    """Before any provider registered, a call gets a clean error reply and rpcmesh lives."""
    mesh = MeshRun(tmp_path, zookeeper_server)
    try:
        consumer = dubbo_consumer("node", mesh.port, version="1.0.0")
        result = consumer.call("whoami", timeout_ms=2000)
        assert not result.ok and result.status == 70, result  # SERVICE_ERROR, a local reply
        assert mesh.proc.poll() is None
        assert mesh.cluster()["endpoints"] == []
    finally:
        mesh.stop()


def test_zookeeper_that_lost_its_data_gets_a_new_session(
        zookeeper_server: ZooKeeperServer, dubbo_provider: DubboProviderFactory,  # noqa: F811
        dubbo_consumer: DubboConsumerFactory, tmp_path: Path) -> None:
    """ZooKeeper restarted with its data gone refuses the old session (it has seen newer
    transactions): the source gives up on it after twice its session timeout (at least 5 s)
    and starts again with a new one; calls go on to the kept endpoint meanwhile, and a
    provider registered in the new ZooKeeper then takes traffic."""
    first = dubbo_provider(zk=zookeeper_server.address, zk_session_ms=PROVIDER_SESSION_MS)
    mesh = MeshRun(tmp_path, zookeeper_server, session_timeout="2s")
    try:
        mesh.wait_endpoints({first.port})
        consumer = dubbo_consumer("node", mesh.port, version="1.0.0")
        zookeeper_server.stop()
        zookeeper_server.wipe()
        zookeeper_server.start()
        assert _whoami(consumer) == first.port  # the cluster kept its endpoint
        second = dubbo_provider(zk=zookeeper_server.address, zk_session_ms=PROVIDER_SESSION_MS)
        took = _until_port(consumer, second.port, timeout=30.0)
        assert took < 20.0, took  # resumed, or a new session after at most 5 s
    finally:
        mesh.stop()
