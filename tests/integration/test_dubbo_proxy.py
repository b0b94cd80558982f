"""Real Dubbo 2 consumers and provider through rpcmesh (``protocol: dubbo``).

The consumers (node sofa-rpc-node + dubbo-remoting, PyPI dubbo-ssl-python) and the provider
(sofa-rpc-node) are the ones of test_dubbo_peers_direct.py; every scenario that passes there
consumer -> provider directly runs here consumer -> rpcmesh -> provider: the same test
functions, imported, with ``provider`` pointing at rpcmesh. Then what only a proxy does:
routing by interface / method / version / group / attachment, local replies with native
statuses, heartbeats answered by the proxy, refusal of telnet text and of garbage.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dubbo_peers import (
    DubboConsumerFactory,
    DubboProvider,
    DubboProviderFactory,
)
from tests.integration.mesh_harness import (
    LOOPBACK,
    MeshProxy,
    MeshProxyFactory,
    admin_status,
    free_port,
    port_accepts,
    stop_process,
    tail,
)

# The direct-harness scenarios, collected again here with this module's fixtures.
from tests.integration.test_dubbo_peers_direct import (  # noqa: F401
    _clients,
    client,
    consumers,
    test_1mib_argument,
    test_20_concurrent_calls_on_one_connection,
    test_attachments,
    test_big_result,
    test_business_exception,
    test_client_timeout_keeps_the_connection,
    test_heartbeat,
    test_ints_booleans_doubles,
    test_list,
    test_long_above_2_pow_53,
    test_map,
    test_pojo,
    test_server_error_status_80,
    test_strings,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real_provider(dubbo_provider_module: DubboProviderFactory) -> DubboProvider:
    return dubbo_provider_module(version="1.0.0")


@pytest.fixture(scope="module")
def mesh(mesh_proxy_module: MeshProxyFactory, real_provider: DubboProvider) -> MeshProxy:
    return mesh_proxy_module(real_provider, protocol="dubbo")


@pytest.fixture(scope="module")
def provider(mesh: MeshProxy) -> int:
    """What the imported scenarios call: rpcmesh's port, in front of the real provider."""
    return mesh.port


# --------------------------------------------------------------------------------------------
# routing: a config with version / group / method / attachment routes


class MeshRun:
    def __init__(self, config: Path, port: int, admin: int) -> None:
        self.port = port
        self.log = config.with_suffix(".log")
        self.proc = subprocess.Popen([sys.executable, "-m", "mesh", "run", str(config)],
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     cwd=config.parent)
        deadline = time.monotonic() + 15
        while not (port_accepts(port) and admin_status(admin) == 200):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop_process(self.proc)
                pytest.fail(f"mesh run did not start:\n{tail(self.log)}", pytrace=False)
            time.sleep(0.05)


@pytest.fixture(scope="module")
def fleet(dubbo_provider_module: DubboProviderFactory, real_provider: DubboProvider,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    canary = dubbo_provider_module(version="2.0.0", group="canary")
    port, admin = free_port(), free_port()
    dead = free_port()
    config = tmp_path_factory.mktemp("dubbo-routes") / "mesh.yaml"
    config.write_text(f"""\
listeners:
  - name: dubbo
    address: {LOOPBACK}:{port}
    protocol: dubbo
    filters:
      - name: attachments
        config: {{set: {{x-mesh-zone: zone-a}}, remove: [x-secret]}}
    routes:
      - name: canary-by-group
        match: {{service: com.rpcmesh.test.EchoService, group: canary}}
        cluster: canary
      - name: canary-by-tag
        match: {{service: {{prefix: com.rpcmesh.}}, headers: [{{name: x-tag, exact: gray}}]}}
        cluster: canary
      - name: down
        match: {{service: com.rpcmesh.test.EchoService, method: whoami, headers: [{{name: x-down, present: true}}]}}
        cluster: dead
      - name: stable
        match: {{service: {{regex: "com\\\\.rpcmesh\\\\..*Service"}}, version: 1.0.0}}
        cluster: stable
clusters:
  - name: stable
    endpoints: [{real_provider.address}]
  - name: canary
    endpoints: [{canary.address}]
  - name: dead
    endpoints: [{LOOPBACK}:{dead}]
    connect_timeout: 300ms
admin: {{address: {LOOPBACK}:{admin}}}
""")
    run = MeshRun(config, port, admin)
    try:
        yield {"port": port, "stable": real_provider, "canary": canary}
    finally:
        stop_process(run.proc)


@pytest.mark.parametrize("kind", ["node", "python"])
def test_routes_by_version_group_and_attachment(kind: str, fleet: dict[str, Any],
                                                dubbo_consumer: DubboConsumerFactory) -> None:
    stable = dubbo_consumer(kind, fleet["port"], version="1.0.0")
    assert stable.call("whoami").unwrap()["port"] == fleet["stable"].port
    canary = dubbo_consumer(kind, fleet["port"], version="2.0.0", group="canary")
    assert canary.call("whoami").unwrap()["port"] == fleet["canary"].port
    # an attachment (tag) sends a 1.0.0 call to the canary provider, which has no 1.0.0
    tagged = stable.call("whoami", attachments={"x-tag": "gray"})
    assert tagged.kind == "server_error" and "not found service" in tagged.message
    assert stable.call("echo", "via tag", attachments={"x-tag": "gray"}).status == 80


@pytest.mark.parametrize("kind", ["node", "python"])
def test_attachments_filter_rewrites_only_the_attachments(kind: str, fleet: dict[str, Any],
                                                          dubbo_consumer: DubboConsumerFactory) -> None:
    consumer = dubbo_consumer(kind, fleet["port"], version="1.0.0")
    seen = consumer.call("attachments", attachments={"x-secret": "s", "x-keep": "k"}).unwrap()
    assert seen["x-mesh-zone"] == "zone-a" and seen["x-keep"] == "k" and "x-secret" not in seen
    assert seen["path"] == "com.rpcmesh.test.EchoService"
    size = 40000 if kind == "node" else 30000  # node: a chunked string; python: under 32768
    arg = "\u4e2d" * size  # the arguments pass byte for byte in front of the new map
    assert consumer.call("sizeOf", arg, timeout_ms=10000).unwrap() == size


@pytest.mark.parametrize("kind", ["node", "python"])
def test_local_replies_have_native_statuses(kind: str, fleet: dict[str, Any],
                                            dubbo_consumer: DubboConsumerFactory) -> None:
    lost = dubbo_consumer(kind, fleet["port"], version="9.9.9")
    result = lost.call("echo", "x")
    assert not result.ok and result.status == 60, result  # SERVICE_NOT_FOUND: no route
    assert "no route" in (result.message or "").lower()
    stable = dubbo_consumer(kind, fleet["port"], version="1.0.0")
    down = stable.call("whoami", attachments={"x-down": "1"})
    assert not down.ok and down.status == 70, down  # SERVICE_ERROR: upstream unavailable
    assert stable.call("echo", "still here").unwrap() == "still here"


# --------------------------------------------------------------------------------------------
# raw bytes a consumer library would not send


def _exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_heartbeat_is_answered_byte_exact_by_the_proxy(mesh: MeshProxy) -> None:
    with socket.create_connection((LOOPBACK, mesh.port), timeout=5) as sock:
        sock.sendall(b"\xda\xbb\xe2\x00" + struct.pack(">qI", 77, 1) + b"N")
        reply = sock.recv(100)
    assert reply == b"\xda\xbb\x22\x14" + struct.pack(">qI", 77, 1) + b"N"


def test_telnet_text_is_refused_cleanly(mesh: MeshProxy) -> None:
    reply = _exchange(mesh.port, b"ls\r\n")
    assert b"telnet" in reply and b"not available" in reply


def test_garbage_gets_bad_request_and_the_worker_lives(mesh: MeshProxy, client: Any) -> None:  # noqa: F811
    bad_magic = _exchange(mesh.port, b"\xda\xbc" + b"\x00" * 30)
    assert bad_magic[:2] == b"\xda\xbb" and bad_magic[3] == 40  # BAD_REQUEST
    header = b"\xda\xbb\xc2\x00" + struct.pack(">qI", 5, 3)
    bad_body = _exchange(mesh.port, header + b"\xff\xff\xff")
    assert bad_body[3] == 40 and struct.unpack(">q", bad_body[4:12])[0] == 5
    huge = _exchange(mesh.port, b"\xda\xbb\xc2\x00" + struct.pack(">qI", 6, 2**31))
    assert huge[3] == 40 and b"limit" in huge
    assert mesh.alive()
    assert client.call("echo", "after garbage").unwrap() == "after garbage"
