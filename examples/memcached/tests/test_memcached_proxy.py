"""Real memcached traffic through rpcmesh: pymemcache -> mesh proxy (this codec) -> two memcached.

The proxy shards by key (``--lb ring_hash --hash-key header:key``); every
test checks what it can against the memcached servers directly, so a key is
not only readable through the proxy but stored on the shard the ring chose.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest
from memcached_peers import CI, Memcached, MeshProxy, free_port, start_proxy, stop

try:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheServerError
except ImportError:
    if CI:  # CI installs it: its absence is a broken job
        raise
    pytest.skip("pymemcache is not installed (pip install pymemcache)", allow_module_level=True)

Ring = Callable[[str], Memcached]


def through(proxy: MeshProxy, **options: object) -> Client:
    return Client(("127.0.0.1", proxy.port), connect_timeout=5, timeout=10, **options)


def direct(server: Memcached) -> Client:
    return Client(("127.0.0.1", server.port), connect_timeout=5, timeout=10)


def assert_on_ring_shard(keys: list[str], ring: Ring, shards: tuple[Memcached, Memcached],
                         value: Callable[[str], bytes]) -> None:
    for key in keys:
        chosen = ring(key)
        other = shards[1] if chosen is shards[0] else shards[0]
        assert direct(chosen).get(key) == value(key), f"{key} is not on the shard the ring chose"
        assert direct(other).get(key) is None, f"{key} is also on the other shard"


def test_set_get_delete_incr(mesh_proxy: MeshProxy, memcached: tuple[Memcached, Memcached],
                             ring: Ring) -> None:
    client = through(mesh_proxy)  # pymemcache's default: set and delete with noreply
    client.set("user:1", b"alice")
    assert client.get("user:1") == b"alice"
    assert client.set("counter", b"41", noreply=False) is True
    assert client.incr("counter", 1) == 42 and client.decr("counter", 2) == 40
    assert client.incr("no-such-counter", 1) is None
    assert client.add("user:1", b"again", noreply=False) is False
    assert client.append("user:1", b"!", noreply=False) is True
    value, token = client.gets("user:1")
    assert value == b"alice!"
    assert client.cas("user:1", b"bob", token) is True and client.cas("user:1", b"eve", token) is False
    assert client.touch("user:1", 600, noreply=False) is True
    assert_on_ring_shard(["user:1", "counter"], ring, memcached, {"user:1": b"bob", "counter": b"40"}.get)
    assert client.delete("user:1", noreply=False) is True
    client.delete("counter")  # noreply: nothing comes back, the next get is still in step
    assert client.get("user:1") is None and client.get("counter") is None
    assert client.version() and b"pid" in client.stats()


def test_get_many_spans_both_shards(mesh_proxy: MeshProxy, memcached: tuple[Memcached, Memcached],
                                    ring: Ring) -> None:
    keys = [f"spread:{i}" for i in range(64)]
    value = lambda key: f"value of {key}".encode()  # noqa: E731
    client = through(mesh_proxy)
    client.set_many({k: value(k) for k in keys})  # pipelined noreply sets
    on_a = [k for k in keys if ring(k) is memcached[0]]
    assert 0 < len(on_a) < len(keys), "the keys should fall on both shards"
    assert client.get_many([*keys, "spread:missing"]) == {k: value(k) for k in keys}
    assert {k: v for k, (v, _) in client.gets_many(keys).items()} == {k: value(k) for k in keys}
    assert_on_ring_shard(keys, ring, memcached, value)
    client.delete_many(keys)
    assert client.get_many(keys) == {}


def test_a_512_kib_value(mesh_proxy: MeshProxy, memcached: tuple[Memcached, Memcached], ring: Ring) -> None:
    big = bytes(range(256)) * (512 * 1024 // 256)
    client = through(mesh_proxy)
    assert client.set("big:1", big, noreply=False) is True
    assert client.get("big:1") == big
    assert_on_ring_shard(["big:1"], ring, memcached, lambda _: big)


def _pipelined_gets(port: int, keys: list[str], results: dict[int, list[bytes]], slot: int) -> None:
    """200 gets in one write, then read 200 replies: each ``VALUE ... END`` or ``END``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(b"get %s\r\n" % k.encode() for k in keys))
        buffer, values = b"", list[bytes]()
        while len(values) < len(keys):
            end = buffer.find(b"END\r\n")
            if end < 0:
                chunk = sock.recv(65536)
                assert chunk, f"the proxy closed after {len(values)} replies"
                buffer += chunk
                continue
            reply, buffer = buffer[:end], buffer[end + 5:]
            values.append(reply.split(b"\r\n")[1] if reply else b"")
        results[slot] = values


def test_200_pipelined_gets_from_4_concurrent_clients(mesh_proxy: MeshProxy,
                                                      memcached: tuple[Memcached, Memcached]) -> None:
    keys = [f"pipe:{i}" for i in range(200)]
    # Wait for STORED: noreply sets from this connection could still be on their way when
    # the getters' requests, on other connections, reach the shards.
    through(mesh_proxy).set_many({k: k.upper().encode() for k in keys if not k.endswith("7")},
                                 noreply=False)
    results: dict[int, list[bytes]] = {}
    clients = [threading.Thread(target=_pipelined_gets, args=(mesh_proxy.port, keys[s:] + keys[:s], results, s))
               for s in (0, 50, 100, 150)]  # each client asks in a different order
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=30)
    assert sorted(results) == [0, 50, 100, 150], "a client did not get its 200 replies"
    for start, values in results.items():
        asked = keys[start:] + keys[:start]
        expected = [b"" if k.endswith("7") else k.upper().encode() for k in asked]
        assert values == expected, f"replies out of order for the client starting at {start}"


def test_quit_closes_only_that_client(mesh_proxy: MeshProxy) -> None:
    other = through(mesh_proxy)
    other.set("quit:1", b"still here", noreply=False)
    with socket.create_connection(("127.0.0.1", mesh_proxy.port), timeout=10) as sock:
        sock.sendall(b"version\r\n")
        assert sock.recv(100).startswith(b"VERSION ")
        sock.sendall(b"quit\r\n")
        assert sock.recv(100) == b""  # closed by the proxy, not by an upstream
    assert other.get("quit:1") == b"still here"


def test_a_malformed_command_gets_a_client_error_and_the_connection_closes(mesh_proxy: MeshProxy) -> None:
    with socket.create_connection(("127.0.0.1", mesh_proxy.port), timeout=10) as sock:
        sock.sendall(b"set k 0 0 notanumber\r\n")
        answer = b""
        while chunk := sock.recv(100):
            answer += chunk
    assert answer == b"CLIENT_ERROR bytes 'notanumber' is not a number\r\n"


def test_a_dead_shard_answers_server_error_for_its_keys_only(
        memcached: tuple[Memcached, Memcached], tmp_path_factory: pytest.TempPathFactory) -> None:
    from mesh.cluster.balancer import RingHash
    from mesh.cluster.endpoint import UpstreamEndpoint

    alive, dead_port = memcached[0], free_port()
    upstreams = [alive.address, f"127.0.0.1:{dead_port}"]
    proxy = start_proxy(upstreams, tmp_path_factory.mktemp("dead") / "mesh.log")
    try:
        ring = RingHash([UpstreamEndpoint("127.0.0.1", p, 1, {}, 5, 30.0) for p in (alive.port, dead_port)])
        keys = [f"dead:{i}" for i in range(40)]
        to_dead = next(k for k in keys if ring.pick(k).port == dead_port)
        to_alive = next(k for k in keys if ring.pick(k).port == alive.port)
        client = through(proxy)
        assert client.set(to_alive, b"ok", noreply=False) is True
        with pytest.raises(MemcacheServerError, match="UNAVAILABLE"):
            client.get(to_dead)
        client = through(proxy)  # pymemcache closes its connection after an error
        assert client.get(to_alive) == b"ok"
    finally:
        stop(proxy.proc)
