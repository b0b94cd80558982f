"""The plain lane (mesh/proxy/plain.py) on the wire: redis-py and raw sockets through
``mesh proxy --protocol redis --lb ketama`` in front of two real redis-server shards.

One-key commands (GET, SET, INCR...) take the lane; everything else takes the general path.
These tests mix both in one pipeline and check what the lane must keep from the general
path: reply order, the route timeout, per-shard failures, stats and the access log.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.mesh_harness import (
    LOOPBACK,
    MeshProxy,
    MeshProxyFactory,
    free_port,
    port_accepts,
    require_tools,
    stop_process,
)

redis = pytest.importorskip("redis", reason="redis-py (pip install redis) is the real client here")


class Shards:
    """Two real redis-server processes."""

    def __init__(self, server: str, tmp: Path) -> None:
        self.ports = [free_port(), free_port()]
        self.procs: list[subprocess.Popen[Any]] = []
        for port in self.ports:
            log = (tmp / f"redis-{port}.log").open("wb")
            self.procs.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly",
                 "no", "--dir", str(tmp)], stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 10
        while not all(port_accepts(p) for p in self.ports):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def direct(self, index: int) -> Any:
        return redis.Redis(host=LOOPBACK, port=self.ports[index], socket_timeout=10)

    def owner(self, key: str) -> int:
        found = [i for i in range(len(self.ports)) if self.direct(i).exists(key)]
        assert len(found) == 1, f"{key!r} on shards {found}"
        return found[0]

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)


@pytest.fixture(scope="module")
def shards() -> Iterator[Shards]:
    tools = require_tools("redis-server")
    with tempfile.TemporaryDirectory() as tmp:
        s = Shards(tools["redis-server"], Path(tmp))
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture
def proxy(shards: Shards, mesh_proxy: MeshProxyFactory) -> MeshProxy:
    return mesh_proxy([f"{LOOPBACK}:{p}" for p in shards.ports], protocol="redis", lb="ketama",
                      timeout="500ms", extra_args=["--access-log"])


def _client(proxy: MeshProxy) -> Any:
    return redis.Redis(host=LOOPBACK, port=proxy.port, socket_timeout=10)


def _read(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock`` (replies may come in several segments)."""
    got = b""
    while len(got) < size:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {got!r}"
        got += chunk
    return got


def _keys(prefix: str, count: int) -> list[str]:
    # fnv1a puts near-identical short keys on one arc of the ring: vary them
    return [prefix + hashlib.sha1(b"%d" % i).hexdigest()[:12] for i in range(count)]


def test_plain_and_general_requests_in_one_pipeline_keep_their_order(proxy: MeshProxy,
                                                                     shards: Shards) -> None:
    """SETs and GETs (lane) interleaved with PING, MGET across shards, an unknown command,
    a WRONGTYPE and an arity error (general path): every reply in request order."""
    client = _client(proxy)
    keys = _keys("order:", 40)
    pipe = client.pipeline(transaction=False)
    for i, key in enumerate(keys):
        pipe.set(key, i)
        if i % 7 == 0:
            pipe.ping()
            pipe.mget(keys[: i + 1])
            pipe.execute_command("NOSUCHCOMMAND", key)
            pipe.lpush(keys[0], "x")  # WRONGTYPE from the shard
            pipe.execute_command("GET", key, "extra")  # arity: answered by the proxy
        pipe.incr(key)
        pipe.get(key)
    results = pipe.execute(raise_on_error=False)
    expected: list[Any] = []
    for i, _key in enumerate(keys):
        expected.append(True)
        if i % 7 == 0:
            expected += [True, [str(j + 1).encode() for j in range(i)] + [str(i).encode()],
                         "unknown", "WRONGTYPE", "wrong number"]
        expected += [i + 1, str(i + 1).encode()]
    assert len(results) == len(expected)
    for got, want in zip(results, expected, strict=True):
        if isinstance(want, str):
            assert isinstance(got, redis.ResponseError) and want in str(got), (got, want)
        else:
            assert got == want
    assert {shards.owner(k) for k in keys} == {0, 1}  # both shards took part
    client.close()


def test_inline_commands_between_arrays_in_one_send(proxy: MeshProxy) -> None:
    """Telnet-style lines and RESP arrays in one segment (the array parser restarts after
    each line): all answered, in order."""
    with socket.create_connection((LOOPBACK, proxy.port), timeout=10) as sock:
        sock.sendall(b"SET inline:a 1\r\n*2\r\n$3\r\nGET\r\n$8\r\ninline:a\r\nPING\r\n"
                     b"*3\r\n$6\r\nINCRBY\r\n$8\r\ninline:a\r\n$2\r\n41\r\nGET inline:a\r\n")
        want = b"+OK\r\n$1\r\n1\r\n+PONG\r\n:42\r\n$2\r\n42\r\n"
        assert _read(sock, len(want)) == want


def test_a_paused_shard_times_out_only_its_commands(proxy: MeshProxy, shards: Shards) -> None:
    """CLIENT PAUSE on one shard: its keys get the route timeout's -ERR after 500 ms, the other
    shard's keys are answered meanwhile; once the pause ends the late replies are dropped and
    the same keys work again (replies are matched in order on the shared connection)."""
    client = _client(proxy)
    keys = _keys("pause:", 20)
    for key in keys:
        client.set(key, "v")
    paused = [k for k in keys if shards.owner(k) == 1]
    live = [k for k in keys if shards.owner(k) == 0]
    assert paused and live
    shards.direct(1).execute_command("CLIENT", "PAUSE", "2000", "ALL")
    start = time.monotonic()
    with pytest.raises(redis.ResponseError, match="timed out"):
        client.get(paused[0])
    assert 0.4 < time.monotonic() - start < 1.9
    assert client.get(live[0]) == b"v"
    time.sleep(max(0.0, start + 2.3 - time.monotonic()))
    assert client.get(paused[1]) == b"v"
    assert client.get(paused[0]) == b"v"
    client.close()


def _metric(text: str, name: str, label: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {label} not in /stats")


def test_stats_and_access_log_count_every_plain_command(proxy: MeshProxy) -> None:
    """/stats: requests and responses of the listener, route and cluster move by the number
    of commands; the access log has a line per command with method, cluster and upstream."""
    def stats() -> str:
        return proxy.admin_get("/stats")[2].decode()

    before = stats()
    with socket.create_connection((LOOPBACK, proxy.port), timeout=10) as sock:
        # redis-py would add its own CLIENT SETINFO commands: exactly 100 here
        sock.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nx\r\n"
                              b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n"
                              % (len(k), k.encode(), len(k), k.encode())
                              for k in _keys("stats:", 50)))
        want = b"+OK\r\n$1\r\nx\r\n" * 50
        assert _read(sock, len(want)) == want
    after = stats()
    for name, label in (("mesh_listener_requests_total", 'listener="proxy"'),
                        ("mesh_route_requests_total", 'route="default"'),
                        ("mesh_cluster_requests_total", 'cluster="upstream"'),
                        ("mesh_listener_request_duration_seconds_count", 'listener="proxy"'),
                        ("mesh_cluster_request_duration_seconds_count", 'cluster="upstream"')):
        assert _metric(after, name, label) - _metric(before, name, label) == 100, name
    lines = [json.loads(line) for line in proxy.log_text().splitlines()
             if line.startswith("{") and '"access"' in line]
    gets = [e for e in lines if e.get("method") == "GET" and e.get("cluster") == "upstream"]
    assert len(gets) >= 50
    assert all(e["upstream"] and e["route"] == "default" for e in gets)


def test_a_client_gone_mid_pipeline_leaves_the_proxy_serving(proxy: MeshProxy) -> None:
    """A client sends 5000 plain commands and closes without reading: the proxy drops their
    replies, and the next client (sharing the upstream connections) is answered in order."""
    command = b"*3\r\n$3\r\nSET\r\n$9\r\ngone:%04d\r\n$1\r\nv\r\n"
    with socket.create_connection((LOOPBACK, proxy.port), timeout=10) as sock:
        sock.sendall(b"".join(command % i for i in range(5000)))
    client = _client(proxy)
    pipe = client.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"after:{i}", i)
        pipe.get(f"after:{i}")
    assert pipe.execute()[1::2] == [str(i).encode() for i in range(200)]
    client.close()
    assert proxy.alive()


def test_a_shard_first_used_while_waiting_in_the_poller_turn_is_connected(
        proxy: MeshProxy, shards: Shards) -> None:
    """One GET opens the first shard's connection; the client's next GET, for the other shard,
    arrives while the session waits in the poller's turn: the lane hands the connect to the
    session's task, which sends the command once connected."""
    from mesh.cluster.balancer import Ketama
    from mesh.cluster.endpoint import UpstreamEndpoint

    ring = Ketama([UpstreamEndpoint(LOOPBACK, p, 1, {}, 5, 30.0) for p in shards.ports])
    by_shard: dict[int, str] = {}
    for key in _keys("first:", 64):
        by_shard.setdefault(ring.pick_key(key.encode()).port, key)
    first, second = (by_shard[p] for p in shards.ports)
    shards.direct(1).set(second, "there")
    with socket.create_connection((LOOPBACK, proxy.port), timeout=10) as sock:
        for key, want in ((first, b"$-1\r\n"), (second, b"$5\r\nthere\r\n")):
            sock.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key.encode()))
            assert _read(sock, len(want)) == want
            time.sleep(0.2)  # the session is back to waiting in the poller's turn
