"""Dubbo 3 application-level discovery end to end: a real Dubbo consumer calls through rpcmesh to
real providers found in a real ZooKeeper by ``mode: instance`` (issue 7, second step).

- ZooKeeper 3.8 (Debian ``zookeeper``, zookeeper_server.py) on 127.0.0.1.
- Providers: tests/peers/dubbo_node/provider.js (sofa-rpc-node + dubbo-remoting, hessian2),
  started *without* a registry. **sofa-rpc-node only registers interface-level
  (``/dubbo/<interface>/providers``), so the test writes their Dubbo 3 application-level
  registration itself**, node for node as a Dubbo 3 provider with ``register-mode: instance``
  and ``metadata-type: remote`` does (tests/unit/test_discovery_zookeeper_app.py's
  Dubbo3Registry, shapes from tests/golden/dubbo3/): the mapping ``/dubbo/mapping/<interface>``,
  one ephemeral Curator instance per provider under ``/services/echo-provider``, and the
  MetadataInfo of each revision under ``/dubbo/metadata/echo-provider``.
- Consumer: tests/peers/dubbo_node/consumer.js (sofa-rpc-node's RpcClient) with one connection
  to rpcmesh (``mesh run``), whose cluster lists no endpoint, only
  ``discovery: {source: zookeeper, config: {mode: instance, version: "1.0.0", ...}}``.

Shown: the call reaches the 1.0.0 provider and never the 2.0.0 one of the same application
(filtered by its revision's metadata); a provider registered later takes traffic within 1 s;
an unregistered one stops getting calls, none failing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

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
from tests.unit.test_discovery_zookeeper_app import Dubbo3Registry, service

pytestmark = pytest.mark.integration

APP = "echo-provider"


class MeshRun:
    """``mesh run``: one Dubbo listener, one cluster discovered at application level."""

    def __init__(self, workdir: Path, zk: ZooKeeperServer) -> None:
        self.port, self.admin = free_port(), free_port()
        config = workdir / "mesh.yaml"
        config.write_text(f"""\
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
    discovery:
      source: zookeeper
      config: {{address: "{zk.address}", interface: {INTERFACE}, mode: instance,
               version: "1.0.0"}}
admin: {{address: {LOOPBACK}:{self.admin}}}
""")
        self.log = workdir / "mesh.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(config)],
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=workdir)
        LIVE_LOGS["mesh run (dubbo 3 discovery)"] = self.log
        deadline = time.monotonic() + 15
        while not (port_accepts(self.port) and admin_status(self.admin) == 200):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"mesh run did not start:\n{tail(self.log)}", pytrace=False)
            time.sleep(0.05)

    def cluster(self) -> dict[str, Any]:
        status, _, body = http_get(self.admin, "/clusters", timeout=5.0)
        assert status == 200, body
        return {c["name"]: c for c in json.loads(body)}["echo"]

    def wait_endpoints(self, ports: set[int], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while (seen := {int(e["address"].rsplit(":", 1)[1])
                        for e in self.cluster()["endpoints"]}) != ports:
            if time.monotonic() > deadline:
                pytest.fail(f"/clusters lists {sorted(seen)}, not {sorted(ports)}\n"
                            f"{tail(self.log)}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)
        LIVE_LOGS.pop("mesh run (dubbo 3 discovery)", None)


def register(registry: Dubbo3Registry, provider: DubboProvider) -> str:
    """What a Dubbo 3 provider of ``provider``'s version writes: its revision's MetadataInfo
    (the revision, as Dubbo's, a hash of the app and its services, the port included), then
    its instance."""
    info = service(provider.version, port=provider.port, application=APP, methods="echo,whoami")
    revision = hashlib.md5(f"{APP}{json.dumps(info, sort_keys=True)}".encode()).hexdigest()
    registry.metadata(APP, revision, info)
    return registry.register(APP, provider.port, revision, storage="remote")


def whoami(consumer: DubboConsumer) -> dict[str, Any]:
    value: dict[str, Any] = consumer.call("whoami", timeout_ms=2000).unwrap()
    return value


def test_dubbo3_application_level_discovery(
        zookeeper_server: ZooKeeperServer, dubbo_provider: DubboProviderFactory,  # noqa: F811
        dubbo_consumer: DubboConsumerFactory, tmp_path: Path) -> None:
    v1 = dubbo_provider(version="1.0.0")
    v2 = dubbo_provider(version="2.0.0")
    registry = Dubbo3Registry(zookeeper_server.address)
    mesh = None
    try:
        registry.map(INTERFACE, APP)  # the mapping Dubbo 3 writes on export
        register(registry, v1)
        register(registry, v2)
        assert zookeeper_server.children(f"/dubbo/{INTERFACE}/providers") == []  # no Dubbo 2
        mesh = MeshRun(tmp_path, zookeeper_server)
        mesh.wait_endpoints({v1.port})  # v2's metadata says 2.0.0: not for this consumer
        [endpoint] = mesh.cluster()["endpoints"]
        assert endpoint["weight"] == 100
        assert endpoint["metadata"]["application"] == APP
        assert endpoint["metadata"]["version"] == "1.0.0"
        assert mesh.cluster()["discovery"] == "1 endpoints"

        consumer = dubbo_consumer("node", mesh.port, version="1.0.0")
        assert consumer.call("echo", "via dubbo 3").unwrap() == "via dubbo 3"
        me = whoami(consumer)
        assert (me["port"], me["version"]) == (v1.port, "1.0.0")

        # a provider registering later takes traffic within 1 s
        v1b = dubbo_provider(version="1.0.0")
        register(registry, v1b)
        start = time.monotonic()
        while whoami(consumer)["port"] != v1b.port:
            assert time.monotonic() - start < 5.0, "the new provider got no call"
        took = time.monotonic() - start
        assert took < 1.0, f"the new provider took {took:.2f} s to get a call"
        spread = Counter(whoami(consumer)["port"] for _ in range(20))
        assert spread[v1.port] >= 5 and spread[v1b.port] >= 5, spread  # round robin

        # one unregisters (Dubbo deletes its instance node on shutdown): no call fails
        registry.unregister(APP, v1.port)
        seen: Counter[Any] = Counter()
        deadline = time.monotonic() + 5.0
        while {int(e["address"].rsplit(":", 1)[1])
               for e in mesh.cluster()["endpoints"]} != {v1b.port}:
            assert time.monotonic() < deadline, mesh.cluster()
            result = consumer.call("whoami", timeout_ms=2000)
            seen[result.value["port"] if result.ok else "failed"] += 1
        assert "failed" not in seen, seen
        assert Counter(whoami(consumer)["port"] for _ in range(10)) == Counter({v1b.port: 10})
        assert v2.port not in seen and v2.alive()  # the 2.0.0 provider never got a call
    finally:
        if mesh is not None:
            mesh.stop()
        registry.close()
