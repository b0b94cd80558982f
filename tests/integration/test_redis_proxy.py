"""redis-py, redis-cli and redis-benchmark through ``mesh proxy --protocol redis --lb ketama``
in front of three real redis-server shards, and the shard choice compared with twemproxy
(Debian nutcracker) on the same config."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.mesh_harness import (
    LOOPBACK,
    free_port,
    port_accepts,
    require_tools,
    stop_process,
    tail,
)

redis = pytest.importorskip("redis", reason="redis-py (pip install redis) is the real client here")

SHARDS = 3


def _wait_port(port: int, proc: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + 10
    while not port_accepts(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"port {port} never opened:\n{tail(log)}")
        time.sleep(0.05)


class Fleet:
    def __init__(self, tools: dict[str, str], tmp: Path) -> None:
        self.procs: list[subprocess.Popen[Any]] = []
        self.tmp = tmp
        self.shards = [free_port() for _ in range(SHARDS)]
        for port in self.shards:
            self._start(port, [tools["redis-server"], "--port", str(port), "--bind", LOOPBACK,
                               "--save", "", "--appendonly", "no", "--dir", str(tmp)], f"redis-{port}")
        self.proxy = free_port()
        upstream = ",".join(f"{LOOPBACK}:{p}" for p in self.shards)
        self._start(self.proxy, [sys.executable, "-m", "mesh", "proxy", "--listen",
                                 f"{LOOPBACK}:{self.proxy}", "--protocol", "redis", "--upstream",
                                 upstream, "--lb", "ketama"], "mesh")
        self.twem = free_port()
        conf = tmp / "nutcracker.yml"
        servers = "".join(f"    - {LOOPBACK}:{p}:1\n" for p in self.shards)
        conf.write_text(f"pool:\n  listen: {LOOPBACK}:{self.twem}\n  hash: fnv1a_64\n"
                        f"  distribution: ketama\n  hash_tag: \"{{}}\"\n  redis: true\n"
                        f"  auto_eject_hosts: false\n  servers:\n{servers}")
        self._start(self.twem, [tools["nutcracker"], "-c", str(conf), "-s", str(free_port())],
                    "nutcracker")

    def _start(self, port: int, argv: list[str], name: str) -> None:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        _wait_port(port, proc, log)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    tools = require_tools("redis-server", "redis-cli", "redis-benchmark", "nutcracker")
    with tempfile.TemporaryDirectory() as tmp:
        f = Fleet(tools, Path(tmp))
        try:
            yield f
        finally:
            f.stop()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def client(fleet: Fleet, request: pytest.FixtureRequest) -> Any:
    r = redis.Redis(host=LOOPBACK, port=fleet.proxy, protocol=request.param, socket_timeout=10)
    yield r
    r.close()


def _shard_of(fleet: Fleet, key: bytes) -> list[int]:
    return [i for i, p in enumerate(fleet.shards)
            if redis.Redis(host=LOOPBACK, port=p).exists(key)]


def test_strings_hashes_lists_sets_zsets(client: Any) -> None:
    assert client.ping() is True
    assert client.set("s:1", "v") is True and client.get("s:1") == b"v"
    assert client.incr("s:n") >= 1 and client.append("s:1", "w") == 2
    for key in ("h:1", "l:1", "set:1", "z:1"):
        client.delete(key)
    assert client.hset("h:1", mapping={"a": "1", "b": "2"}) == 2
    assert client.hget("h:1", "a") == b"1" and client.hlen("h:1") == 2
    assert client.rpush("l:1", "a", "b", "c") == 3 and client.lrange("l:1", 0, -1) == [b"a", b"b", b"c"]
    assert client.lpop("l:1") == b"a"
    assert client.sadd("set:1", "x", "y") == 2 and client.smembers("set:1") == {b"x", b"y"}
    assert client.zadd("z:1", {"a": 1, "b": 2}) == 2 and client.zrange("z:1", 0, -1) == [b"a", b"b"]
    assert client.zscore("z:1", "b") == 2.0


def test_binary_safe(client: Any) -> None:
    key = b"bin\x00\r\nkey\xff"
    big = bytes(range(256)) * (3 * 1024 * 4) + b"\r\n\x00"  # 3 MiB and a bit
    assert client.set(key, b"a\x00b\r\nc") is True and client.get(key) == b"a\x00b\r\nc"
    assert client.set("big", big) is True and client.get("big") == big


def test_pipeline_order_and_errors_in_the_middle(client: Any) -> None:
    client.set("p:str", "x")
    pipe = client.pipeline(transaction=False)
    for i in range(1500):
        pipe.set(f"p:{i}", i)
        if i == 700:
            pipe.lpush("p:str", "boom")  # WRONGTYPE in the middle
    for i in range(1500):
        pipe.get(f"p:{i}")
    results = pipe.execute(raise_on_error=False)
    assert isinstance(results[701], redis.ResponseError) and "WRONGTYPE" in str(results[701])
    gets = results[-1500:]
    assert gets == [str(i).encode() for i in range(1500)]
    assert client.get("p:str") == b"x"  # the connection keeps working


def test_arity_and_refusals_keep_the_connection(client: Any) -> None:
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get'"):
        client.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="WATCH keys may live on different shards"):
        client.execute_command("WATCH", "k", "other-k")
    with pytest.raises(redis.ResponseError, match="EXEC without MULTI"):
        client.execute_command("EXEC")
    with pytest.raises(redis.ResponseError, match="unknown"):
        client.execute_command("NOSUCHCOMMAND", "x")
    assert client.echo("still here") == b"still here"
    assert client.execute_command("SELECT", "0") in (True, b"OK")
    client.client_setname("me")
    assert client.client_getname() in ("me", b"me")


def test_multi_key_commands_split_across_shards(fleet: Fleet, client: Any) -> None:
    """MSET of 300 keys, MGET over 300 with missing keys interleaved, EXISTS over 61 summed:
    the keys really spread over the shards, and each lands where a one-key SET would."""
    keys = [f"mk:{hashlib.sha1(b'%d' % i).hexdigest()[:12]}" for i in range(300)]
    mapping = {k: f"v{i}\x00\r\n" for i, k in enumerate(keys)}
    assert client.mset(mapping) is True
    placed = {tuple(_shard_of(fleet, k.encode())) for k in keys}
    assert len(placed) == SHARDS and all(len(p) == 1 for p in placed)
    assert all(client.get(k) == mapping[k].encode() for k in keys[:20])
    wanted = [k if i % 3 else f"missing:{i}" for i, k in enumerate(keys)]
    got = client.mget(wanted)
    assert got == [None if w.startswith("missing:") else mapping[w].encode() for w in wanted]
    some = keys[:40] + [f"missing:{i}" for i in range(20)] + [keys[0]]  # 61 keys, one twice
    assert client.exists(*some) == 41
    assert client.touch(*keys[:50]) == 50
    assert client.delete(*keys[:100], "missing:x") == 100
    assert client.unlink(*keys[100:]) == 200
    assert client.exists(*keys) == 0
    assert client.mget(keys[:5]) == [None] * 5


def test_multi_key_on_the_wire_with_redis_cli(fleet: Fleet) -> None:
    out = subprocess.run(["redis-cli", "-h", LOOPBACK, "-p", str(fleet.proxy)],
                         input=b"MSET a 1 b 2 c 3 d 4\nMGET a x b c d\nDEL a b c d x\n",
                         capture_output=True, timeout=10, check=True)
    assert out.stdout.decode().split() == ["OK", "1", "2", "3", "4", "4"]


def test_blocking_commands_run_on_the_clients_own_connection(fleet: Fleet, client: Any) -> None:
    """BLPOP waits on a connection of its own: other clients go on meanwhile, a push from
    another client wakes it, its own timeout ends it, and the client's later commands keep
    their order behind it."""
    import threading

    client.delete("bq")
    other = redis.Redis(host=LOOPBACK, port=fleet.proxy, socket_timeout=10)
    result: list[Any] = []
    waiter = threading.Thread(target=lambda: result.append(client.blpop(["bq"], timeout=5)))
    started = time.monotonic()
    waiter.start()
    time.sleep(0.3)
    for i in range(50):  # the shared connections are not held by the waiting BLPOP
        assert other.set(f"busy:{i}", i) is True
    assert time.monotonic() - started < 2
    assert other.rpush("bq", "woken") == 1
    waiter.join(timeout=10)
    assert [tuple(r) for r in result] == [(b"bq", b"woken")]  # RESP3: a list
    assert client.blpop(["bq"], timeout=1) is None  # its own timeout, answered nil
    pipe = client.pipeline(transaction=False)
    pipe.set("after", "1").brpop(["bq"], timeout=1).get("after")
    assert pipe.execute() == [True, None, b"1"]  # in order behind the blocking command
    with pytest.raises(redis.ResponseError, match="different shards"):
        client.execute_command("BLPOP", "q1", "q2-elsewhere", "1")
    other.close()


def test_multi_exec_runs_on_the_shard_of_its_first_key(fleet: Fleet, client: Any) -> None:
    """redis-py transactions through the proxy: queued on the shard of the first key, executed
    atomically there; keys elsewhere make Redis itself abort the EXEC; an empty one and DISCARD
    are answered by the proxy; the connection goes on afterwards."""
    client.delete("{acct}.a", "{acct}.b")
    pipe = client.pipeline(transaction=True)
    pipe.set("{acct}.a", 10).incrby("{acct}.a", 5).rpush("{acct}.b", "x").get("{acct}.a")
    assert pipe.execute() == [True, 15, 1, b"15"]
    shard = _shard_of(fleet, b"{acct}.a")
    assert shard == _shard_of(fleet, b"{acct}.b") and len(shard) == 1
    # a key on another shard: Redis refuses it at queue time and aborts the EXEC
    keys = [hashlib.sha1(b"tx%d" % i).hexdigest() for i in range(40)]
    elsewhere = next(k for k in keys if _shard_of(fleet, b"{acct}.a") != _placement(fleet, k))
    pipe = client.pipeline(transaction=True)
    pipe.incr("{acct}.a").set(elsewhere, "1")
    # redis-py reports the queue-time error the server gave (and Redis answered EXECABORT)
    with pytest.raises(redis.ResponseError, match="RPCMESH-KEY-ON-ANOTHER-SHARD"):
        pipe.execute()
    assert client.get("{acct}.a") == b"15"  # nothing of the aborted transaction ran
    wire = [b"MULTI", b"INCR {acct}.a", b"SET " + elsewhere.encode() + b" 1", b"EXEC"]
    out = subprocess.run(["redis-cli", "-h", LOOPBACK, "-p", str(fleet.proxy)],
                         input=b"\n".join(wire) + b"\n", capture_output=True, timeout=10).stdout
    lines = [line for line in out.decode().splitlines() if line]
    assert lines[:2] == ["OK", "QUEUED"] and "ANOTHER-SHARD" in lines[2], lines
    assert lines[3].startswith("EXECABORT"), lines  # Redis' own answer
    assert client.execute_command("MULTI") in (True, b"OK")
    assert client.execute_command("EXEC") in ([], None)  # nothing queued: the proxy answers
    assert client.execute_command("MULTI") in (True, b"OK")
    with pytest.raises(redis.ResponseError, match="nested"):
        client.execute_command("MULTI")
    assert client.execute_command("DISCARD") in (True, b"OK")
    assert client.incr("{acct}.a") == 16  # and the connection goes on


def test_watch_runs_an_optimistic_transaction_on_its_shard(fleet: Fleet, client: Any) -> None:
    """redis-py's WATCH/MULTI/EXEC (check-and-set) through the proxy: the WATCH pins the client to
    the shard of its keys, so a write by another client between WATCH and EXEC makes the server
    abort the EXEC (redis-py raises WatchError), and the retry succeeds."""
    client.set("{cas}.n", 1)
    other = redis.Redis(host=LOOPBACK, port=fleet.proxy)
    attempts = []

    def bump(pipe: Any) -> None:
        value = int(pipe.get("{cas}.n"))
        if not attempts:
            other.set("{cas}.n", 100)  # another client writes the watched key meanwhile
        attempts.append(value)
        pipe.multi()
        pipe.set("{cas}.n", value + 1)

    client.transaction(bump, "{cas}.n")  # WATCH, GET, MULTI, SET, EXEC; retried on WatchError
    assert attempts == [1, 100] and client.get("{cas}.n") == b"101"
    with client.pipeline() as pipe:  # UNWATCH, then nothing pinned: a plain transaction
        pipe.watch("{cas}.n")
        pipe.unwatch()
        pipe.multi()
        pipe.incr("{cas}.n")
        assert pipe.execute() == [102]
    with pytest.raises(redis.ResponseError, match="different shards"):
        client.execute_command("WATCH", "{cas}.n", "{elsewhere}.n")
    other.close()


def _placement(fleet: Fleet, key: str) -> list[int]:
    """Where the proxy puts ``key``: write it through the proxy and look."""
    proxy = redis.Redis(host=LOOPBACK, port=fleet.proxy)
    proxy.set(key, "probe")
    placed = _shard_of(fleet, key.encode())
    proxy.delete(key)
    proxy.close()
    return placed


def test_redis_cli(fleet: Fleet) -> None:
    def cli(*args: str) -> str:
        out = subprocess.run(["redis-cli", "-h", LOOPBACK, "-p", str(fleet.proxy), *args],
                             capture_output=True, timeout=10, check=True)
        return out.stdout.decode().strip()
    assert cli("ping") == "PONG"
    assert cli("set", "cli:k", "hello world") == "OK"
    assert cli("get", "cli:k") == "hello world"
    assert "wrong number of arguments" in cli("get")


def test_keys_land_where_twemproxy_puts_them(fleet: Fleet) -> None:
    ours = redis.Redis(host=LOOPBACK, port=fleet.proxy)
    # fnv1a over near-identical short keys clusters on the ring (in twemproxy too): vary them
    keys = [hashlib.sha1(b"%d" % i).hexdigest().encode() for i in range(300)] + [b"{user1000}.following", b"{user1000}.x",
                                                         b"\xc3\xa9t\xe9\x80\xff", b"a{}b", b"{x"]
    # raw RESP: redis-py opens with HELLO / CLIENT SETINFO, which twemproxy refuses
    wire = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$4\r\ntwem\r\n" % (len(k), k) for k in keys)
    with socket.create_connection((LOOPBACK, fleet.twem), timeout=10) as sock:
        sock.sendall(wire)
        got = b""
        while got.count(b"\r\n") < len(keys):
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
    assert got == b"+OK\r\n" * len(keys)
    for key in keys:
        assert ours.get(key) == b"twem", (key, _shard_of(fleet, key))
    used = {tuple(_shard_of(fleet, k)) for k in keys[:300]}
    assert len(used) == SHARDS  # the keys really spread


def test_redis_benchmark_without_errors(fleet: Fleet) -> None:
    out = subprocess.run(["redis-benchmark", "-h", LOOPBACK, "-p", str(fleet.proxy), "-q", "-t",
                          "ping_mbulk,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,mset", "-r", "100000",
                          "-n", "20000"], capture_output=True, timeout=120)
    text = out.stdout.decode() + out.stderr.decode()
    assert out.returncode == 0, text
    assert "error" not in text.lower().replace("could not fetch server config", ""), text
    assert text.count("requests per second") == 11, text


def test_a_dead_shard_fails_only_its_keys_then_is_ejected_and_comes_back(tmp_path: Path) -> None:
    """twemproxy's server_failure_limit / server_retry_timeout, as passive_health:
    consecutive_failures and ejection_time. Commands for the dead shard's keys get a clear
    -ERR, the other shard's keys keep working; after the limit the shard is ejected and its
    keys move to the live one; once ejection_time passes and it is back, they return."""
    tools = require_tools("redis-server")
    shards, procs = [free_port(), free_port()], []
    proxy = free_port()
    config = tmp_path / "mesh.yaml"
    config.write_text(f"""\
listeners:
  - name: redis
    address: {LOOPBACK}:{proxy}
    protocol: redis
    routes: [{{cluster: shards, timeout: 2s}}]
clusters:
  - name: shards
    endpoints: [{LOOPBACK}:{shards[0]}, {LOOPBACK}:{shards[1]}]
    lb: ketama
    connect_timeout: 500ms
    passive_health: {{consecutive_failures: 2, ejection_time: 2s}}
admin: {{address: {LOOPBACK}:{free_port()}}}
""")

    def start(argv: list[str], port: int, name: str) -> subprocess.Popen[Any]:
        log = tmp_path / f"{name}.log"
        proc = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        procs.append(proc)
        _wait_port(port, proc, log)
        return proc

    def shard(port: int) -> subprocess.Popen[Any]:
        return start([tools["redis-server"], "--port", str(port), "--bind", LOOPBACK, "--save", "",
                      "--appendonly", "no", "--dir", str(tmp_path)], port, f"redis-{port}")

    try:
        shard(shards[0])
        dead = shard(shards[1])
        start([sys.executable, "-m", "mesh", "run", str(config)], proxy, "mesh")
        client = redis.Redis(host=LOOPBACK, port=proxy, socket_timeout=10)
        # fnv1a clusters near-identical short keys on one arc of the ring: vary them
        keys = [hashlib.sha1(b"f%d" % i).hexdigest() for i in range(40)]
        for key in keys:
            client.set(key, "v")
        on_dead = [k for k in keys if redis.Redis(host=LOOPBACK, port=shards[1]).exists(k)]
        on_live = [k for k in keys if k not in on_dead]
        assert on_dead and on_live
        stop_process(dead)
        with pytest.raises(redis.ResponseError, match="upstream unavailable"):
            client.get(on_dead[0])
        assert client.get(on_live[0]) == b"v"  # only the affected command failed
        with pytest.raises(redis.ResponseError, match="upstream unavailable"):
            client.get(on_dead[1])
        # ejected after 2 failures: the dead shard's keys now land on the live one
        assert client.set(on_dead[0], "moved") is True
        assert redis.Redis(host=LOOPBACK, port=shards[0]).get(on_dead[0]) == b"moved"
        assert client.set(on_dead[2], "while ejected") is True  # on the live shard too
        shard(shards[1])
        deadline = time.monotonic() + 10  # ejection_time, then the first success brings it back
        while client.get(on_dead[2]) is not None:  # None: asked the restarted (empty) shard
            assert time.monotonic() < deadline, "the shard never came back"
            time.sleep(0.1)
        assert client.set(on_dead[2], "home") is True
        assert redis.Redis(host=LOOPBACK, port=shards[1]).get(on_dead[2]) == b"home"
        client.close()
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def test_modula_places_keys_as_twemproxy_does(tmp_path: Path) -> None:
    """``lb: modula`` against nutcracker's ``distribution: modula`` on the same shards, with
    weights (server 1 counts twice): every key written through nutcracker reads back through
    rpcmesh."""
    tools = require_tools("redis-server", "nutcracker")
    shards, procs = [free_port(), free_port()], []
    proxy, twem = free_port(), free_port()

    def start(argv: list[str], port: int, name: str) -> None:
        log = tmp_path / f"{name}.log"
        proc = subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        procs.append(proc)
        _wait_port(port, proc, log)

    try:
        for port in shards:
            start([tools["redis-server"], "--port", str(port), "--bind", LOOPBACK, "--save", "",
                   "--appendonly", "no", "--dir", str(tmp_path)], port, f"redis-{port}")
        conf = tmp_path / "nutcracker.yml"
        conf.write_text(f"pool:\n  listen: {LOOPBACK}:{twem}\n  hash: fnv1a_64\n"
                        f"  distribution: modula\n  hash_tag: \"{{}}\"\n  redis: true\n"
                        f"  servers:\n    - {LOOPBACK}:{shards[0]}:2\n    - {LOOPBACK}:{shards[1]}:1\n")
        start([tools["nutcracker"], "-c", str(conf), "-s", str(free_port())], twem, "nutcracker")
        config = tmp_path / "mesh.yaml"
        config.write_text(f"""\
listeners:
  - {{name: redis, address: "{LOOPBACK}:{proxy}", protocol: redis, routes: [{{cluster: shards}}]}}
clusters:
  - name: shards
    lb: modula
    endpoints:
      - {{address: "{LOOPBACK}:{shards[0]}", weight: 2}}
      - {{address: "{LOOPBACK}:{shards[1]}", weight: 1}}
admin: null
""")
        start([sys.executable, "-m", "mesh", "run", str(config)], proxy, "mesh")
        keys = [hashlib.sha1(b"m%d" % i).hexdigest().encode() for i in range(120)] + [b"{tag}.a", b"{tag}.b"]
        wire = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$4\r\ntwem\r\n" % (len(k), k) for k in keys)
        with socket.create_connection((LOOPBACK, twem), timeout=10) as sock:
            sock.sendall(wire)
            got = b""
            while got.count(b"\r\n") < len(keys):
                chunk = sock.recv(65536)
                assert chunk, got
                got += chunk
        ours = redis.Redis(host=LOOPBACK, port=proxy)
        wrong = [(k, [i for i, p in enumerate(shards) if redis.Redis(host=LOOPBACK, port=p).exists(k)])
                 for k in keys if ours.get(k) != b"twem"]
        assert not wrong, (wrong[:5], len(wrong), tail(tmp_path / "mesh.log"))
        on_first = sum(1 for k in keys if redis.Redis(host=LOOPBACK, port=shards[0]).exists(k))
        assert 60 < on_first < len(keys)  # about two thirds: the weight counts
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def test_auth_against_the_configured_password(tmp_path: Path) -> None:
    """``protocol_options: {password: ...}`` on the listener: redis-py with the password works,
    without it gets NOAUTH, a wrong one WRONGPASS; /config_dump does not show the password."""
    tools = require_tools("redis-server")
    shard, proxy, admin, procs = free_port(), free_port(), free_port(), []
    config = tmp_path / "mesh.yaml"
    config.write_text(f"""\
listeners:
  - name: redis
    address: "{LOOPBACK}:{proxy}"
    protocol: redis
    protocol_options: {{password: s3cret}}
    cluster: shard
clusters:
  - {{name: shard, endpoints: ["{LOOPBACK}:{shard}"]}}
admin: {{address: "{LOOPBACK}:{admin}"}}
""")
    try:
        for argv, port, name in (
                ([tools["redis-server"], "--port", str(shard), "--bind", LOOPBACK, "--save", "",
                  "--appendonly", "no", "--dir", str(tmp_path)], shard, "redis"),
                ([sys.executable, "-m", "mesh", "run", str(config)], proxy, "mesh")):
            log = tmp_path / f"{name}.log"
            procs.append(subprocess.Popen(argv, stdout=log.open("ab"), stderr=subprocess.STDOUT))
            _wait_port(port, procs[-1], log)
        good = redis.Redis(host=LOOPBACK, port=proxy, password="s3cret", socket_timeout=5)
        assert good.set("a", "1") is True and good.get("a") == b"1"
        anonymous = redis.Redis(host=LOOPBACK, port=proxy, socket_timeout=5)
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("a")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=LOOPBACK, port=proxy, password="nope", socket_timeout=5).get("a")
        dump = subprocess.run(["curl", "-s", f"http://{LOOPBACK}:{admin}/config_dump"],
                              capture_output=True, timeout=10).stdout
        assert b"s3cret" not in dump and b"<redacted>" in dump
    finally:
        for proc in reversed(procs):
            stop_process(proc)
